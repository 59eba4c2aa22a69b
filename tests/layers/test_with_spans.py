import numpy as np
import pytest
import spacy
from spacy.tokens import Doc
from thinc.api import Model

from spacy_elmo.layers.spans import strided_spans_v1
from spacy_elmo.layers.with_spans import batches_by_length, with_spans


def test_batches_respect_the_token_budget():
    lengths = [5, 1, 9, 3, 3, 20, 2, 8]
    groups = batches_by_length(lengths, max_batch_items=10)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        longest = max(lengths[i] for i in group)
        assert len(group) == 1 or len(group) * longest <= 10
    assert [20] in [[lengths[i] for i in g] for g in groups]  # too long: alone
    for group in groups:  # longest first, the biLM's own order (no reordering inside it)
        assert [lengths[i] for i in group] == sorted((lengths[i] for i in group), reverse=True)


def _recording_layer(calls):
    """Each token's vector is its length and a running index; records batch sizes."""

    def forward(model, X, is_train):
        calls.append([len(x) for x in X])
        Y = [np.array([[len(t), 1.0] for t in tokens], dtype="float32").reshape(len(tokens), 2) for tokens in X]
        return Y, lambda dY: []

    return Model("recorder", forward, dims={"nO": 2})


def test_results_return_in_order_and_overlaps_average():
    vocab = spacy.blank("en").vocab
    docs = [Doc(vocab, words=["a", "bb", "ccc", "dddd", "eeeee"]), Doc(vocab, words=[]), Doc(vocab, words=["zz"])]
    calls = []
    model = with_spans(strided_spans_v1(window=3, stride=2), _recording_layer(calls), max_batch_items=6)
    model.initialize()
    Y, _ = model(docs, is_train=False)
    assert [y.shape for y in Y] == [(5, 2), (0, 2), (1, 2)]
    np.testing.assert_array_equal(Y[0][:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(Y[0][:, 1], [1, 1, 1, 1, 1])  # averaged, not summed
    assert all(len(c) * max(c) <= 6 for c in calls)


def test_bad_budget():
    with pytest.raises(ValueError, match="max_batch_items"):
        with_spans(strided_spans_v1(), Model("x", lambda m, X, t: (X, None)), max_batch_items=0)
