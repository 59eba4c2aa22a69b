"""Raw text for pretraining: files or folders of ``.txt``, ``.jsonl`` (``text``) or ``.spacy``.

Text is tokenised with a blank spaCy pipeline of ``lang``; sentences are one
per line (``sentences = "lines"``) or split by spaCy's sentencizer
(``"sentencizer"``). For the sentencizer a plain-text file is read paragraph by
paragraph (blank lines separate paragraphs, hard-wrapped lines are joined), so a
sentence that wraps over lines stays whole. A UTF-8 byte-order mark is dropped.
Whitespace tokens are dropped and sentences longer than ``max_length`` tokens are
cut into pieces.

Batches hold whole sentences up to ``batch_tokens`` tokens, optionally of
similar length (``length_buckets``). Their order is a pure function of
``(seed, epoch, length_buckets)``, so a run can resume at any batch exactly.
"""
import json
import random
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

PathLike = Union[str, Path]
SUFFIXES = (".txt", ".jsonl", ".spacy")


def corpus_files(path: PathLike) -> List[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if files:
            return files
        raise ValueError(f"Corpus folder {path} holds no {', '.join(SUFFIXES)} files.")
    raise ValueError(f"Corpus path {path} not found. Set it with --paths.train / --paths.dev or in the config's [paths].")


MAX_PARAGRAPH_CHARS = 100_000


def _paragraphs(lines: Iterator[str]) -> Iterator[str]:
    """Blank-line separated paragraphs, their lines joined with single spaces.

    A paragraph is cut after ``MAX_PARAGRAPH_CHARS`` characters, at a line end,
    so a file without blank lines does not become one giant text.
    """
    current: List[str] = []
    size = 0
    for line in lines:
        line = line.strip()
        if line:
            current.append(line)
            size += len(line) + 1
        if current and (not line or size >= MAX_PARAGRAPH_CHARS):
            yield " ".join(current)
            current, size = [], 0
    if current:
        yield " ".join(current)


def _texts(path: Path, nlp, paragraphs: bool = False) -> Iterator[str]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8-sig") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as err:
                    raise ValueError(f"{path}, line {number}: not valid JSON ({err}).") from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise ValueError(f'{path}, line {number}: expected an object with a "text" string.')
                yield record["text"]
    elif path.suffix == ".spacy":
        from spacy.tokens import DocBin

        for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
            yield doc.text
    else:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            yield from _paragraphs(f) if paragraphs else f


def read_sentences(
    path: PathLike, *, lang: str = "en", sentences: str = "lines", max_length: int = 100, limit: int = 0
) -> List[List[str]]:
    """Token lists of every sentence under ``path`` (first ``limit`` sentences if > 0)."""
    import spacy

    if sentences not in ("lines", "sentencizer"):
        raise ValueError(f"corpus.sentences must be 'lines' or 'sentencizer', got {sentences!r}.")
    nlp = spacy.blank(lang)
    if sentences == "sentencizer":
        nlp.add_pipe("sentencizer")
    out: List[List[str]] = []
    for file in corpus_files(path):
        texts = (t for t in _texts(file, nlp, paragraphs=sentences == "sentencizer") if t.strip())
        for doc in nlp.pipe(texts, batch_size=256):
            spans = doc.sents if sentences == "sentencizer" else [doc[:]]
            for span in spans:
                tokens = [t.text for t in span if not t.is_space]
                for start in range(0, len(tokens), max_length):
                    piece = tokens[start : start + max_length]
                    if piece:
                        out.append(piece)
                        if limit and len(out) >= limit:
                            return out
    return out


def epoch_batches(
    sentences: Sequence[Sequence[str]], batch_tokens: int, seed: int, epoch: int, length_buckets: int = 0
) -> List[List[int]]:
    """Sentence indices per batch for ``epoch``: shuffled, ~``batch_tokens`` tokens each.

    ``length_buckets = k > 0``: the shuffled sentences are taken ``k`` batches'
    worth at a time, sorted by length within that pool, cut into batches, and
    the batches of the epoch are shuffled again. Every sentence is still seen
    once per epoch, but a batch holds sentences of similar length, so the
    LSTM's time loop runs ~as many steps as its sentences are long rather
    than as long as its longest one (several times fewer, larger steps on
    mixed text). ``0``: random batches.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(sentences)))
    rng.shuffle(order)
    if length_buckets <= 0:
        return _cut(sentences, order, batch_tokens)
    pool_tokens = batch_tokens * length_buckets
    batches: List[List[int]] = []
    pool: List[int] = []
    size = 0
    for i in order + [-1]:
        if i >= 0:
            pool.append(i)
            size += len(sentences[i])
        if pool and (size >= pool_tokens or i < 0):
            batches.extend(_cut(sentences, sorted(pool, key=lambda j: len(sentences[j])), batch_tokens))
            pool, size = [], 0
    rng.shuffle(batches)
    return batches


def _cut(sentences: Sequence[Sequence[str]], order: Sequence[int], batch_tokens: int) -> List[List[int]]:
    """``order`` cut into consecutive batches of at most ``batch_tokens`` tokens (at least one sentence each)."""
    batches: List[List[int]] = []
    current: List[int] = []
    size = 0
    for i in order:
        n = len(sentences[i])
        if current and size + n > batch_tokens:
            batches.append(current)
            current, size = [], 0
        current.append(i)
        size += n
    if current:
        batches.append(current)
    return batches


def shard(batch: List[int], rank: int, world_size: int) -> List[int]:
    """This rank's part of a global batch (every ``world_size``-th sentence)."""
    return batch[rank::world_size]


def held_out_batches(sentences: Sequence[Sequence[str]], batch_tokens: int, limit: Optional[int] = None) -> List[List[int]]:
    """Fixed batches over the held-out sentences (the same every evaluation)."""
    return epoch_batches(sentences[:limit] if limit else sentences, batch_tokens, seed=0, epoch=-1)
