import pytest
import spacy
from spacy.tokens import Doc

from spacy_elmo.layers.spans import doc_spans_v1, sent_or_window_spans_v1, sent_spans_v1, strided_spans_v1


@pytest.fixture(scope="module")
def vocab():
    return spacy.blank("en").vocab


def _doc(vocab, n, sent_starts=None):
    words = [f"w{i}" for i in range(n)]
    return Doc(vocab, words=words, sent_starts=sent_starts)


def _bounds(spans):
    return [(s.start, s.end) for s in spans]


def test_strided_windows_cover_every_token(vocab):
    get = strided_spans_v1(window=4, stride=3)
    docs = [_doc(vocab, n) for n in (0, 1, 4, 5, 10)]
    out = get(docs)
    assert _bounds(out[0]) == []
    assert _bounds(out[1]) == [(0, 1)]
    assert _bounds(out[2]) == [(0, 4)]
    assert _bounds(out[3]) == [(0, 4), (3, 5)]
    assert _bounds(out[4]) == [(0, 4), (3, 7), (6, 10)]


def test_sentences_and_long_sentences(vocab):
    starts = [True, False, False, True] + [False] * 9 + [True, False]
    doc = _doc(vocab, len(starts), sent_starts=starts)
    assert _bounds(sent_spans_v1()([doc])[0]) == [(0, 3), (3, 13), (13, 15)]
    assert _bounds(sent_spans_v1(max_length=4, stride=4)([doc])[0]) == [(0, 3), (3, 7), (7, 11), (11, 13), (13, 15)]
    assert _bounds(sent_or_window_spans_v1(window=5, stride=4)([doc])[0]) == [(0, 3), (3, 8), (7, 12), (11, 13), (13, 15)]


def test_sent_or_window_without_boundaries_uses_windows(vocab):
    doc = _doc(vocab, 9)
    assert _bounds(sent_or_window_spans_v1(window=4, stride=4)([doc])[0]) == [(0, 4), (4, 8), (8, 9)]


def test_doc_spans(vocab):
    assert [_bounds(s) for s in doc_spans_v1()([_doc(vocab, 3), _doc(vocab, 0)])] == [[(0, 3)], []]


@pytest.mark.parametrize("window, stride", [(0, 1), (4, 0), (4, 5), ("4", 2)])
def test_bad_windows(window, stride):
    with pytest.raises(ValueError, match="Invalid"):
        strided_spans_v1(window=window, stride=stride)
