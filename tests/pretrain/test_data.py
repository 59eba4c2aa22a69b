import random

import pytest

from spacy_elmo.pretrain.data import MAX_PARAGRAPH_CHARS, epoch_batches, read_sentences


def test_sentencizer_joins_hard_wrapped_lines_and_drops_the_bom(tmp_path):
    # the novels' layout: BOM, CRLF, lines wrapped at ~70 characters, blank lines between paragraphs
    text = "\ufeffChapter 1\r\n\r\nThe door was shut, and the usual\r\nnoises refilled the place. Then he\r\nleft.\r\n\r\n\"Well?\"\r\n"
    path = tmp_path / "novel.txt"
    path.write_bytes(text.encode("utf8"))
    sentences = read_sentences(path, sentences="sentencizer")
    assert sentences == [
        ["Chapter", "1"],
        ["The", "door", "was", "shut", ",", "and", "the", "usual", "noises", "refilled", "the", "place", "."],
        ["Then", "he", "left", "."],
        ['"', "Well", "?", '"'],
    ]


def test_lines_mode_keeps_one_sentence_per_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\ufeffOne line here\nand another\n\n", encoding="utf8")
    assert read_sentences(path, sentences="lines") == [["One", "line", "here"], ["and", "another"]]


def test_a_file_without_blank_lines_is_cut_into_bounded_paragraphs(tmp_path):
    line = "word " * 199 + "end.\n"
    path = tmp_path / "wall.txt"
    n_lines = 3 * MAX_PARAGRAPH_CHARS // len(line)
    path.write_text(line * n_lines, encoding="utf8")
    sentences = read_sentences(path, sentences="sentencizer", max_length=1000)
    assert sum(len(s) for s in sentences) == n_lines * 201


def _sentences(n=3000, seed=0):
    rng = random.Random(seed)
    return [["w"] * rng.choice([1, 3, 5, 8, 12, 20, 35, 60, 100]) for _ in range(n)]


@pytest.mark.parametrize("length_buckets", [0, 1, 50])
def test_every_sentence_once_per_epoch_within_the_token_budget(length_buckets):
    sentences = _sentences()
    batches = epoch_batches(sentences, 512, seed=3, epoch=2, length_buckets=length_buckets)
    assert sorted(i for b in batches for i in b) == list(range(len(sentences)))
    assert all(b and (len(b) == 1 or sum(len(sentences[i]) for i in b) <= 512) for b in batches)
    # a pure function of (seed, epoch, length_buckets): a resumed run finds the same batches
    assert batches == epoch_batches(sentences, 512, seed=3, epoch=2, length_buckets=length_buckets)
    assert batches != epoch_batches(sentences, 512, seed=3, epoch=3, length_buckets=length_buckets)


def test_length_buckets_give_fewer_lstm_steps_on_mixed_lengths():
    """The LSTM runs as many steps as a batch's longest sentence: bucketing cuts their sum."""
    sentences = _sentences()
    steps = {k: sum(max(len(sentences[i]) for i in b) for b in epoch_batches(sentences, 2048, 0, 0, k)) for k in (0, 50)}
    assert steps[50] < 0.7 * steps[0]
    # and the batches are not in length order (no curriculum): both short and long come early
    first = [max(len(sentences[i]) for i in b) for b in epoch_batches(sentences, 2048, 0, 0, 50)[:10]]
    assert min(first) < 20 and max(first) >= 60
