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


def _averaged(docs, get_spans, layer_out):
    """The plain definition: every span's words (whitespace left out) through the layer, each
    token's vector the mean of its spans' vectors, zeros where no span reads it."""
    outputs = [np.zeros((len(doc), 2), dtype="float32") for doc in docs]
    counts = [np.zeros(len(doc), dtype="float32") for doc in docs]
    for d, spans in enumerate(get_spans(docs)):
        for span in spans:
            words = [t for t in span if not t.is_space]
            if words:
                index = np.array([t.i for t in words])
                outputs[d][index] += layer_out([t.text for t in words])
                counts[d][index] += 1
    return [out / np.maximum(c, 1.0)[:, None] for out, c in zip(outputs, counts)]


def _vectors(words):
    """A deterministic vector per word position and text (so any mix-up shows)."""
    return np.array([[len(w) + 0.25 * i, (hash(w) % 97) / 7.0] for i, w in enumerate(words)], dtype="float32").reshape(len(words), 2)


def test_each_span_getter_gives_the_plain_definition_and_its_gradient():
    """Sentences (no overlap: vectors placed by slice), sentences around whitespace tokens,
    overlapping windows and spans out of order (averaged) all give the plain definition's
    vectors, and the backward pass hands the layer each sequence's slice of the gradient
    (divided by the number of spans reading each token)."""
    from spacy_elmo.layers.spans import sent_spans_v1

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    texts = ["One two three. Four five!\n\nSix  seven eight nine.", "", "  ", "Lone", "a b c d e f g h i j k"]  # "  ": a space token inside
    docs = [nlp(t) for t in texts]

    def reversed_sentences(batch):
        return [list(reversed(list(spans))) for spans in sent_spans_v1()(batch)]

    for get_spans in (sent_spans_v1(), strided_spans_v1(window=4, stride=3), reversed_sentences):
        seen = []

        def forward(model, X, is_train):
            def backprop(dY):
                seen.extend((tuple(x), dy.copy()) for x, dy in zip(X, dY))
                return []

            return [_vectors(x) for x in X], backprop

        model = with_spans(get_spans, Model("layer", forward, dims={"nO": 2}), max_batch_items=8)
        model.initialize()
        Y, backprop = model(docs, is_train=True)
        for got, want in zip(Y, _averaged(docs, get_spans, _vectors)):
            np.testing.assert_array_equal(got, want)
        dY = [np.arange(len(doc) * 2, dtype="float32").reshape(len(doc), 2) + 1 for doc in docs]
        backprop(dY)
        counts = [np.zeros(len(doc)) for doc in docs]
        expected = []
        for d, spans in enumerate(get_spans(docs)):
            for span in spans:
                words = [t for t in span if not t.is_space]
                if words:
                    counts[d][[t.i for t in words]] += 1
                    expected.append((d, [t.i for t in words]))
        want = sorted((tuple(docs[d][i].text for i in index), (dY[d][index] / np.maximum(counts[d][index], 1)[:, None]).tolist()) for d, index in expected)
        assert sorted((x, dy.tolist()) for x, dy in seen) == want
