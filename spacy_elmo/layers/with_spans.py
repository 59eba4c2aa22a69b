"""Docs -> spans -> a sequence layer -> one array per doc.

``with_spans(get_spans, layer, max_batch_items)``: ``Model[List[Doc], List[Floats2d]]``.
The spans of all docs are sorted by length and run through ``layer``
(``Model[List[List[str]], List[Floats2d]]``) in batches whose padded size
(sequences x longest) stays under ``max_batch_items`` tokens, so memory is
bounded whatever the docs; results go back to input order. A token covered by
several spans (overlapping windows) gets the average of its vectors.

Whitespace tokens (spaCy makes ``" "``, ``"\n\n"`` tokens) are left out of the
sequences, as pretraining leaves them out of its text: the biLM reads the words
around them as neighbours, and their own vector is zeros.
"""
from typing import Callable, List, Optional, Tuple

import numpy
from spacy.attrs import IS_SPACE
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

from ..errors import Errors
from .spans import SpanGetter

InT = List[Doc]
OutT = List[Floats2d]
Positions = List[Tuple[int, List[int]]]  # (doc index, token indices read) per sequence


def with_spans(get_spans: SpanGetter, layer: Model, max_batch_items: int = 4096) -> Model[InT, OutT]:
    if not isinstance(max_batch_items, int) or max_batch_items < 1:
        raise ValueError(
            Errors.E047.format(what="max_batch_items", value=max_batch_items, why="it must be a positive number of tokens")
        )
    return Model(
        "with_spans",
        forward,
        init=init,
        layers=[layer],
        dims={"nO": None},
        attrs={"get_spans": get_spans, "max_batch_items": max_batch_items},
    )


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    layer = model.layers[0]
    layer.initialize()
    if layer.has_dim("nO") and layer.get_dim("nO") is not None:
        model.set_dim("nO", layer.get_dim("nO"), force=True)


def batches_by_length(lengths: List[int], max_batch_items: int) -> List[List[int]]:
    """Indices grouped so that ``len(group) * longest <= max_batch_items`` (a
    longer single sequence goes alone), the groups shortest first, each group
    longest first: the biLM runs its rows in that order, so it need not reorder
    its inputs and outputs (two copies of each batch's layers)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: List[List[int]] = []
    current: List[int] = []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > max_batch_items:
            groups.append(current[::-1])
            current = []
        current.append(i)
    if current:
        groups.append(current[::-1])
    return groups


def span_words(docs: InT, get_spans: SpanGetter) -> Tuple[Positions, List[List[str]], List[bool]]:
    """The sequences the layer reads: per span with any word, ``(doc index, token indices)``
    and the words (whitespace tokens left out); and per doc whether any of its spans overlap
    (or come out of order), which makes its tokens' vectors averages."""
    where: Positions = []
    texts: List[List[str]] = []
    overlapping = [False] * len(docs)
    for d, spans in enumerate(get_spans(docs)):
        doc = docs[d]
        length = len(doc)
        words: Optional[List[str]] = None
        space = None
        end_so_far = 0
        for span in spans:
            start, end = span.start, span.end
            if not 0 <= start < end <= length:
                raise ValueError(Errors.E049.format(start=start, end=end, length=length))
            if start < end_so_far:
                overlapping[d] = True
            end_so_far = max(end_so_far, end)
            if words is None:  # once per doc, however many spans read it
                words = [token.text for token in doc]
                space = doc.to_array(IS_SPACE)
            if space[start:end].any():
                positions = (start + numpy.flatnonzero(space[start:end] == 0)).tolist()
            else:
                positions = list(range(start, end))
            if positions:
                where.append((d, positions))
                texts.append([words[i] for i in positions])
    return where, texts, overlapping


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    layer = model.layers[0]
    ops = model.ops
    width = model.get_dim("nO")
    where, texts, overlapping = span_words(docs, model.attrs["get_spans"])
    span_out: List[Optional[Floats2d]] = [None] * len(texts)
    callbacks = []
    for group in batches_by_length([len(t) for t in texts], model.attrs["max_batch_items"]):
        Y, backprop = layer([texts[i] for i in group], is_train)
        for i, y in zip(group, Y):
            span_out[i] = y
        callbacks.append((group, backprop))
    outputs = [ops.alloc2f(len(doc), width) for doc in docs]
    # Docs whose spans do not overlap (sentences, the default) take each span's vectors as
    # they are, by slice where its words are contiguous; the others average them per token.
    counts = {d: ops.alloc1f(len(docs[d])) for d in range(len(docs)) if overlapping[d]}
    for (d, positions), y in zip(where, span_out):
        if d in counts:
            index = ops.xp.asarray(positions, dtype="int64")
            outputs[d][index] += y
            counts[d][index] += 1
        elif positions[-1] - positions[0] + 1 == len(positions):
            outputs[d][positions[0] : positions[-1] + 1] = y
        else:
            outputs[d][ops.xp.asarray(positions, dtype="int64")] = y
    scales = {d: 1.0 / ops.xp.maximum(c, 1.0)[:, None] for d, c in counts.items()}
    for d, scale in scales.items():
        outputs[d] = outputs[d] * scale

    def backprop(dY: OutT) -> InT:
        scaled = [dy * scales[d] if d in scales else dy for d, dy in enumerate(dY)]
        for group, bp in callbacks:
            bp([scaled[where[i][0]][ops.xp.asarray(where[i][1], dtype="int64")] for i in group])
        return []

    return outputs, backprop
