"""Span getters: how docs are cut into the sequences the biLM reads.

Same call signature as spacy-transformers' span getters, so theirs can be used
too: ``get_spans(docs) -> List[List[Span]]``, one list of spans per doc, each
span non-empty and inside its doc. Tokens covered by several spans get the
average of their vectors; tokens covered by none get zeros.
"""
from typing import Callable, Iterable, List, Sequence

import numpy
from spacy.attrs import IS_PUNCT, ORTH
from spacy.pipeline import Sentencizer
from spacy.strings import get_string_id
from spacy.tokens import Doc, Span

from ..errors import Errors

SpanGetter = Callable[[Iterable[Doc]], List[List[Span]]]


def _check_window(window: int, stride: int) -> None:
    if not isinstance(window, int) or window < 1:
        raise ValueError(Errors.E047.format(what="window", value=window, why="it must be a positive number of tokens"))
    if not isinstance(stride, int) or not 1 <= stride <= window:
        raise ValueError(
            Errors.E047.format(
                what="stride", value=stride, why=f"it must be between 1 and the window ({window}) so that windows cover every token"
            )
        )


def _windows(doc: Doc, start: int, end: int, window: int, stride: int) -> List[Span]:
    """Windows of ``window`` tokens every ``stride`` tokens over ``doc[start:end]``, the last one ending at ``end``."""
    spans = []
    pos = start
    while True:
        stop = min(pos + window, end)
        spans.append(doc[pos:stop])
        if stop >= end:
            return spans
        pos += stride


class StridedSpans:
    """Overlapping windows over every doc (ignores sentence boundaries).

    window: tokens per window.
    stride: tokens between window starts (< window: windows overlap, their vectors are averaged).
    """

    def __init__(self, window: int = 128, stride: int = 96) -> None:
        _check_window(window, stride)
        self.window, self.stride = window, stride

    def __call__(self, docs: Iterable[Doc]) -> List[List[Span]]:
        return [_windows(doc, 0, len(doc), self.window, self.stride) if len(doc) else [] for doc in docs]


class SentSpans:
    """One span per sentence (needs sentence boundaries: a parser, senter or
    sentencizer before the component). Sentences longer than ``max_length``
    (when > 0) are cut into windows every ``stride`` tokens."""

    def __init__(self, max_length: int = 0, stride: int = 0) -> None:
        if max_length:
            _check_window(max_length, stride or max_length)
        self.max_length, self.stride = max_length, stride or max_length

    def __call__(self, docs: Iterable[Doc]) -> List[List[Span]]:
        out = []
        for doc in docs:
            spans: List[Span] = []
            for sent in doc.sents:
                if self.max_length and len(sent) > self.max_length:
                    spans.extend(_windows(doc, sent.start, sent.end, self.max_length, self.stride))
                else:
                    spans.append(sent)
            out.append(spans)
        return out


class SentOrWindowSpans:
    """Sentences when a doc has sentence boundaries, else overlapping windows;
    sentences longer than ``window`` are cut into windows too. The default:
    ELMo was trained on sentences, and memory stays bounded for any doc.

    With ``sentencize``, a doc without sentence boundaries (the usual case: the
    ``elmo`` pipe runs before the parser) is first cut where spaCy's rule-based
    ``Sentencizer`` would start sentences (after ``.``, ``!``, ``?`` ...). Only
    the biLM's sequences are cut: the doc's own annotation is not changed.
    """

    def __init__(self, window: int = 128, stride: int = 96, sentencize: bool = False) -> None:
        _check_window(window, stride)
        if not isinstance(sentencize, bool):
            raise ValueError(Errors.E047.format(what="sentencize", value=sentencize, why="it must be true or false"))
        self.window, self.stride, self.sentencize = window, stride, sentencize

    def __call__(self, docs: Iterable[Doc]) -> List[List[Span]]:
        window, stride = self.window, self.stride
        docs = list(docs)
        has_sents = [doc.has_annotation("SENT_START") for doc in docs]
        unsplit = [doc for doc, has in zip(docs, has_sents) if len(doc) and not has] if self.sentencize else []
        rule_starts = iter(rule_sentence_starts_of(unsplit) if unsplit else [])  # in doc order
        out = []
        for doc, has in zip(docs, has_sents):
            if not len(doc):
                out.append([])
                continue
            if has:
                bounds = [(sent.start, sent.end) for sent in doc.sents]
            elif self.sentencize:
                starts = next(rule_starts)
                bounds = list(zip(starts, starts[1:] + [len(doc)]))
            else:
                out.append(_windows(doc, 0, len(doc), window, stride))
                continue
            spans: List[Span] = []
            for start, end in bounds:
                spans.extend(_windows(doc, start, end, window, stride) if end - start > window else [doc[start:end]])
            out.append(spans)
        return out


# spaCy's Sentencizer's punctuation, as string ids (what ``doc.to_array(ORTH)`` holds)
_PUNCT_IDS = numpy.array(sorted(get_string_id(c) for c in Sentencizer.default_punct_chars), dtype="uint64")


def rule_sentence_starts(doc: Doc) -> List[int]:
    """Where spaCy's rule-based ``Sentencizer`` (default punctuation) starts
    sentences in ``doc``: token 0, and after each run containing a sentence-final
    punctuation token, the first token that is neither punctuation
    (``is_punct``) nor one of those characters. The same starts as
    ``Sentencizer().predict`` (tested), from two token attributes, without
    making a Python object per token. (:func:`rule_sentence_starts_of` for many docs.)
    """
    return rule_sentence_starts_of([doc])[0]


def rule_sentence_starts_of(docs: Sequence[Doc]) -> List[List[int]]:
    """:func:`rule_sentence_starts` of each of ``docs`` (none empty), with one set of array
    operations over all their tokens: per doc they cost ~30-60 us, most of it fixed overhead
    (~15 ms for 500 short sentences, 6% of the small biLM's time on them)."""
    arrays = [doc.to_array([ORTH, IS_PUNCT]).reshape(-1, 2) for doc in docs]
    lengths = numpy.array([a.shape[0] for a in arrays], dtype="int64")
    ends = numpy.cumsum(lengths)
    offsets = ends - lengths
    attrs = numpy.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    final = numpy.isin(attrs[:, 0], _PUNCT_IDS)
    candidates = numpy.flatnonzero(~final & (attrs[:, 1] == 0))
    finals = numpy.flatnonzero(final)
    after = numpy.searchsorted(candidates, finals, side="right")  # the first candidate after each final token
    kept = after < len(candidates)
    after, finals = after[kept], finals[kept]
    same_doc = candidates[after] < ends[numpy.searchsorted(ends, finals, side="right")]
    starts = candidates[numpy.unique(after[same_doc])]  # sorted
    cuts = numpy.searchsorted(starts, ends)
    out = []
    first = 0
    for offset, cut in zip(offsets.tolist(), cuts.tolist()):
        out.append([0] + (starts[first:cut] - offset).tolist())
        first = cut
    return out


class DocSpans:
    """The whole doc as one span (memory grows with the longest doc)."""

    def __call__(self, docs: Iterable[Doc]) -> List[List[Span]]:
        return [[doc[:]] if len(doc) else [] for doc in docs]


# Registered functions (setup.cfg ``spacy_span_getters``). The getters are
# instances of module-level classes, not closures, so a pipeline pickles
# (``nlp.pipe(n_process=2)`` under the spawn start method needs it).


def strided_spans_v1(window: int = 128, stride: int = 96) -> SpanGetter:
    """Overlapping windows over every doc (ignores sentence boundaries).

    window: tokens per window.
    stride: tokens between window starts (< window: windows overlap, their vectors are averaged).
    """
    return StridedSpans(window, stride)


def sent_spans_v1(max_length: int = 0, stride: int = 0) -> SpanGetter:
    """One span per sentence, long sentences cut into windows (see :class:`SentSpans`).

    max_length: a sentence longer than this many tokens is cut into windows (0: never).
    stride: tokens between the starts of those windows (0: ``max_length``, no overlap).
    """
    return SentSpans(max_length, stride)


def sent_or_window_spans_v1(window: int = 128, stride: int = 96) -> SpanGetter:
    """Sentences when a doc has them, else windows (see :class:`SentOrWindowSpans`).

    window: tokens per window for docs without sentence boundaries.
    stride: tokens between window starts (< window: windows overlap, their vectors are averaged).
    """
    return SentOrWindowSpans(window, stride)


def sent_or_window_spans_v2(window: int = 128, stride: int = 96, sentencize: bool = True) -> SpanGetter:
    """Sentences: the doc's own, else (``sentencize``) those of spaCy's rule-based
    sentencizer, else windows; long sentences cut into windows (see :class:`SentOrWindowSpans`).

    window: tokens per window (docs without sentence boundaries when ``sentencize`` is off, and long sentences).
    stride: tokens between window starts (< window: windows overlap, their vectors are averaged).
    sentencize: cut a doc without sentence boundaries where the rule-based sentencizer starts sentences.
    """
    return SentOrWindowSpans(window, stride, sentencize)


def doc_spans_v1() -> SpanGetter:
    """The whole doc as one span (memory grows with the longest doc)."""
    return DocSpans()
