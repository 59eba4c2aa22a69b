import pytest
import spacy
from spacy.tokens import Doc

import pickle

from spacy_elmo.layers.spans import (
    doc_spans_v1,
    sent_or_window_spans_v1,
    sent_or_window_spans_v2,
    sent_spans_v1,
    strided_spans_v1,
)


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


def test_sent_or_window_v2_cuts_at_the_sentencizers_sentences(vocab):
    words = ["Hello", "there", ".", "This", "is", "it", "!", "ok", "so", "a", "b", "c", "d", "e", "f", "."]
    doc = Doc(vocab, words=words)
    # rule-based sentences (0-3, 3-7, 7-16); the third is longer than the window, so it is windowed
    assert _bounds(sent_or_window_spans_v2(window=5, stride=4)([doc])[0]) == [(0, 3), (3, 7), (7, 12), (11, 16)]
    assert not doc.has_annotation("SENT_START")  # the doc itself is not annotated
    # the doc's own boundaries win over the rule-based ones
    own = Doc(vocab, words=words, sent_starts=[True] + [False] * 9 + [True] + [False] * 5)
    assert _bounds(sent_or_window_spans_v2(window=20, stride=20)([own])[0]) == [(0, 10), (10, 16)]
    # v1 (and sentencize = false) keep windows over a doc without boundaries
    assert _bounds(sent_or_window_spans_v2(window=8, stride=8, sentencize=False)([doc])[0]) == [(0, 8), (8, 16)]
    assert _bounds(sent_or_window_spans_v1(window=8, stride=8)([doc])[0]) == [(0, 8), (8, 16)]
    # no final punctuation, one token, empty docs
    docs = [Doc(vocab, words=["no", "stop", "here"]), Doc(vocab, words=["x"]), Doc(vocab, words=[])]
    assert [_bounds(s) for s in sent_or_window_spans_v2()(docs)] == [[(0, 3)], [(0, 1)], []]
    # a batch mixing all of these: each doc gets what it gets alone (the rule-based starts are found for the batch at once)
    mixed = [doc, own, docs[2], docs[0], doc, docs[1]]
    get = sent_or_window_spans_v2(window=5, stride=4)
    assert [_bounds(s) for s in get(mixed)] == [_bounds(get([d])[0]) for d in mixed]


def test_sent_or_window_v2_pickles_and_resolves(vocab):
    get = spacy.registry.resolve({"g": {"@span_getters": "spacy-elmo.sent_or_window_spans.v2", "window": 6, "stride": 3}})["g"]
    assert (get.window, get.stride, get.sentencize) == (6, 3, True)
    doc = Doc(vocab, words=["A", "b", ".", "C", "d", "."])
    get([doc])
    again = pickle.loads(pickle.dumps(get))
    assert _bounds(again([doc])[0]) == _bounds(get([doc])[0]) == [(0, 3), (3, 6)]


def test_sent_or_window_v2_bad_sentencize():
    with pytest.raises(ValueError, match="sentencize"):
        sent_or_window_spans_v2(sentencize="yes")


def test_doc_spans(vocab):
    assert [_bounds(s) for s in doc_spans_v1()([_doc(vocab, 3), _doc(vocab, 0)])] == [[(0, 3)], []]


@pytest.mark.parametrize("window, stride", [(0, 1), (4, 0), (4, 5), ("4", 2)])
def test_bad_windows(window, stride):
    with pytest.raises(ValueError, match="Invalid"):
        strided_spans_v1(window=window, stride=stride)


def _sentencizer_starts(doc):
    from spacy.pipeline import Sentencizer

    return [i for i, start in enumerate(Sentencizer().predict([doc])[0]) if start or i == 0]


def test_rule_sentence_starts_equal_spacys_sentencizer(vocab):
    import random

    from spacy_elmo.layers.spans import rule_sentence_starts, rule_sentence_starts_of

    rng = random.Random(0)
    pieces = ["a", "The", "x1", ".", "!", "?", "...", "?!", "'", '"', ")", "(", ",", "-", "。", "।", "٫", "…", "Ok", "🙂", "\n"]
    docs = [Doc(vocab, words=[rng.choice(pieces) for _ in range(rng.randint(1, 40))]) for _ in range(500)]
    docs += [Doc(vocab, words=w) for w in (["."], [".", "."], ["a", "."], [".", "a"], ["a", ".", ")", '"', "b", "c", "!", "d"])]
    for doc in docs:
        assert rule_sentence_starts(doc) == _sentencizer_starts(doc), [t.text for t in doc]
    # all at once: a doc's starts never reach into the next doc
    assert rule_sentence_starts_of(docs) == [_sentencizer_starts(doc) for doc in docs]


def test_rule_sentence_starts_on_real_text(vocab):
    from spacy_elmo.layers.spans import rule_sentence_starts, rule_sentence_starts_of

    from ..conftest import SHARED, require_shared

    path = require_shared(SHARED / "data" / "ud-english-ewt" / "en_ewt-ud-test.conllu")
    nlp = spacy.blank("en")
    texts = [line[len("# text = "):] for line in path.read_text(encoding="utf8").splitlines() if line.startswith("# text = ")]
    docs = [nlp.make_doc(" ".join(texts[i : i + 10])) for i in range(0, len(texts), 10)]
    assert sum(len(d) for d in docs) > 20000
    for doc in docs:
        assert rule_sentence_starts(doc) == _sentencizer_starts(doc)
    assert rule_sentence_starts_of(docs) == [_sentencizer_starts(doc) for doc in docs]
