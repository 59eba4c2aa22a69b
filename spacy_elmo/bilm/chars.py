"""Words to ELMo character ids, exactly as the published biLMs expect them.

Each token becomes ``max_characters_per_token`` (50) ids:

* the UTF-8 bytes of the token (0-255), truncated to ``max_chars - 2`` bytes
  *as bytes*: a multi-byte character cut at the limit keeps its leading bytes,
  which is what bilm-tf and AllenNLP do (there is no re-decoding);
* wrapped in begin-of-word (258) and end-of-word (259) marks, padded with 260;
* the literal tokens ``<S>`` and ``</S>`` map to the sentence-boundary words
  ``[BOW, 256, EOW, pad...]`` and ``[BOW, 257, EOW, pad...]``;
* every id is shifted by +1, so that 0 is free for padding *tokens* (a row of
  zeros): the weight files have 261 character rows and the model prepends a zero
  row for id 0.

The empty token ``""`` is ``[BOW, EOW, pad...]``; whitespace tokens are their
bytes like any other token.
"""
from collections import abc
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import Errors

MAX_CHARACTERS_PER_TOKEN = 50
BOS_CHAR = 256  # beginning of sentence
EOS_CHAR = 257  # end of sentence
BOW_CHAR = 258  # beginning of word
EOW_CHAR = 259  # end of word
PAD_CHAR = 260  # padding inside a word
N_RAW_CHARS = 261  # raw ids 0..260, the rows of the weight file's char_embed
BOS_TOKEN = "<S>"
EOS_TOKEN = "</S>"


def _marked(char: int, max_chars: int) -> List[int]:
    ids = [PAD_CHAR] * max_chars
    ids[0], ids[1], ids[2] = BOW_CHAR, char, EOW_CHAR
    return [i + 1 for i in ids]


def word_to_char_ids(word: str, max_chars: int = MAX_CHARACTERS_PER_TOKEN) -> List[int]:
    """The ``max_chars`` shifted character ids of one token (see module doc)."""
    return list(_word_to_char_ids(word, max_chars))


@lru_cache(maxsize=1 << 16)
def _word_to_char_ids(word: str, max_chars: int) -> Tuple[int, ...]:
    if max_chars < 3:
        raise ValueError(Errors.E023.format(value=max_chars))
    if word == BOS_TOKEN:
        return tuple(_marked(BOS_CHAR, max_chars))
    if word == EOS_TOKEN:
        return tuple(_marked(EOS_CHAR, max_chars))
    # "ignore" as bilm-tf and AllenNLP: only lone surrogates (not valid Unicode
    # scalar values, e.g. from a JSON "\ud800") are dropped.
    data = word.encode("utf-8", "ignore")[: max_chars - 2]
    ids = [BOW_CHAR + 1]
    ids.extend(b + 1 for b in data)
    ids.append(EOW_CHAR + 1)
    ids.extend([PAD_CHAR + 1] * (max_chars - len(ids)))
    return tuple(ids)


def sentence_boundary_ids(max_chars: int = MAX_CHARACTERS_PER_TOKEN) -> torch.Tensor:
    """``(2, max_chars)`` ids of the ``<S>`` and ``</S>`` words, shifted."""
    return torch.tensor([_marked(BOS_CHAR, max_chars), _marked(EOS_CHAR, max_chars)], dtype=torch.long)


def batch_to_ids(
    sentences: Sequence[Sequence[str]],
    max_chars: int = MAX_CHARACTERS_PER_TOKEN,
    *,
    seq_len: Optional[int] = None,
) -> torch.Tensor:
    """Right-padded ``(batch, seq_len, max_chars)`` long tensor of character ids.

    ``seq_len`` defaults to the longest sentence; padding tokens are all zeros.
    Sentence boundaries are *not* added here: the biLM adds them.
    """
    check_sentences(sentences)
    return pad_token_rows(sentences, lambda word: _word_to_char_ids(word, max_chars), max_chars, seq_len)


def pad_token_rows(
    sentences: Sequence[Sequence[str]],
    token_row: Callable[[str], Sequence[int]],
    row_width: int,
    seq_len: Optional[int] = None,
) -> torch.Tensor:
    """``(batch, seq_len, row_width)`` long: ``token_row(token)`` at each token's place, rows of
    zeros after each sentence (``seq_len`` defaults to the longest sentence).

    One row per distinct token of the batch, then one scatter into place (a
    tensor per sentence from nested lists was ~8 us a token).
    """
    rows: Dict[str, int] = {}
    tokens = [rows.setdefault(tok, len(rows)) for sentence in sentences for tok in sentence]
    longest = max((len(s) for s in sentences), default=0)
    width = longest if seq_len is None else max(seq_len, longest)
    out = torch.zeros((len(sentences), width, row_width), dtype=torch.long)
    if tokens:
        table = torch.tensor([token_row(tok) for tok in rows], dtype=torch.long)
        positions = [row * width + col for row, sentence in enumerate(sentences) for col in range(len(sentence))]
        out.view(-1, row_width)[torch.tensor(positions)] = table[torch.tensor(tokens)]
    return out


def check_sentences(sentences: Sequence[Sequence[str]]) -> None:
    """A clear error unless every sentence is a list of token strings."""
    for index, sentence in enumerate(sentences):
        if isinstance(sentence, str) or not isinstance(sentence, abc.Sequence) or not all(isinstance(tok, str) for tok in sentence):
            raise TypeError(Errors.E020.format(index=index, type=_describe(sentence)))


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f"the string {value[:40]!r} (not a list of tokens)"
    if isinstance(value, (list, tuple)):
        bad = [type(v).__name__ for v in value if not isinstance(v, str)]
        return f"a list holding {', '.join(sorted(set(bad)))}"
    return type(value).__name__
