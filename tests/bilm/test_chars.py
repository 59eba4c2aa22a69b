import pytest
import torch

from spacy_elmo.bilm import batch_to_ids, word_to_char_ids
from spacy_elmo.bilm.chars import BOS_CHAR, BOW_CHAR, EOS_CHAR, EOW_CHAR, PAD_CHAR, sentence_boundary_ids

# ids as the model sees them: raw + 1
BOW, EOW, PAD = BOW_CHAR + 1, EOW_CHAR + 1, PAD_CHAR + 1


def test_ascii_word():
    ids = word_to_char_ids("cat")
    assert len(ids) == 50
    assert ids[:5] == [BOW, ord("c") + 1, ord("a") + 1, ord("t") + 1, EOW]
    assert ids[5:] == [PAD] * 45


def test_empty_token_is_bow_eow():
    assert word_to_char_ids("") == [BOW, EOW] + [PAD] * 48


@pytest.mark.parametrize("token", [" ", "\t", "\u00a0", "\n "])
def test_whitespace_tokens_are_their_bytes(token):
    data = token.encode("utf-8")
    assert word_to_char_ids(token)[: len(data) + 2] == [BOW] + [b + 1 for b in data] + [EOW]


def test_sentence_boundary_literals():
    assert word_to_char_ids("<S>")[:4] == [BOW, BOS_CHAR + 1, EOW, PAD]
    assert word_to_char_ids("</S>")[:4] == [BOW, EOS_CHAR + 1, EOW, PAD]
    assert sentence_boundary_ids().tolist() == [word_to_char_ids("<S>"), word_to_char_ids("</S>")]
    # only the exact literals: anything else is plain bytes
    assert word_to_char_ids("<s>")[1] == ord("<") + 1
    assert word_to_char_ids("<S>x")[1] == ord("<") + 1


@pytest.mark.parametrize("n_bytes", [47, 48, 49, 50, 120])
def test_long_tokens_truncate_to_48_bytes(n_bytes):
    ids = word_to_char_ids("a" * n_bytes)
    kept = min(n_bytes, 48)
    assert ids[0] == BOW and ids[kept + 1] == EOW
    assert ids[1 : kept + 1] == [ord("a") + 1] * kept
    assert len(ids) == 50


def test_truncation_inside_a_multibyte_character_keeps_the_leading_bytes():
    # 47 ASCII bytes + "€" (3 bytes: e2 82 ac): the 48-byte cut keeps only 0xe2
    token = "x" * 47 + "\u20ac"
    ids = word_to_char_ids(token)
    assert ids[48] == 0xE2 + 1
    assert ids[49] == EOW
    # 46 + "€" is 49 bytes: two of the three bytes stay
    ids = word_to_char_ids("x" * 46 + "\u20ac")
    assert ids[47:50] == [0xE2 + 1, 0x82 + 1, EOW]
    # 45 + "€" is exactly 48 bytes: the whole character stays
    ids = word_to_char_ids("x" * 45 + "\u20ac")
    assert ids[46:50] == [0xE2 + 1, 0x82 + 1, 0xAC + 1, EOW]


def test_any_unicode():
    for token in ["naïve", "•", "東京", "🙂", "ǅ", "\u0301"]:
        data = token.encode("utf-8")
        ids = word_to_char_ids(token)
        assert ids[1 : len(data) + 1] == [b + 1 for b in data]
    # a lone surrogate (possible from JSON "\ud800") is dropped, as bilm-tf/AllenNLP do
    assert word_to_char_ids("a\ud800b")[:4] == [BOW, ord("a") + 1, ord("b") + 1, EOW]


def test_other_widths():
    assert word_to_char_ids("abcdef", max_chars=5) == [BOW, ord("a") + 1, ord("b") + 1, ord("c") + 1, EOW]
    with pytest.raises(ValueError, match="at least 3"):
        word_to_char_ids("a", max_chars=2)


def test_batch_to_ids_pads_with_zero_tokens():
    ids = batch_to_ids([["a", "b", "c"], [], ["d"]])
    assert ids.shape == (3, 3, 50) and ids.dtype == torch.long
    assert (ids[1] == 0).all() and (ids[2, 1:] == 0).all()
    assert (ids[0] > 0).all()
    assert batch_to_ids([]).shape == (0, 0, 50)
    assert batch_to_ids([[]]).shape == (1, 0, 50)
    assert batch_to_ids([["a"]], seq_len=4).shape == (1, 4, 50)


@pytest.mark.parametrize("bad", ["a plain string", [["nested"]], [1, 2], None])
def test_batch_to_ids_rejects_untokenised_input(bad):
    with pytest.raises(TypeError, match="sentence 0"):
        batch_to_ids([bad])
