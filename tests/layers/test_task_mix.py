"""spacy-elmo.ElmoTaskMix.v1: one ELMo mix per downstream component."""
import numpy as np
import pytest
import spacy
from spacy.training import Example
from thinc.api import Model

from spacy_elmo.layers.task_mix import TaskMix

T_WIDTH = 24
DIM = 32  # the fixture biLM: 2 x 16
UPSTREAM = 3 * DIM + T_WIDTH
TOK2VEC = {
    "@architectures": "spacy.HashEmbedCNN.v2", "width": T_WIDTH, "depth": 1, "embed_size": 500,
    "window_size": 1, "maxout_pieces": 2, "subword_features": True, "pretrained_vectors": None,
}
WORDS = "The cat sat on the mat .".split()


def _listener(**mix):
    return {
        "@architectures": "spacy-elmo.ElmoTaskMix.v1", "elmo_layers": 3, "tok2vec_width": T_WIDTH, **mix,
        "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": UPSTREAM, "upstream": "elmo"},
    }


def _nlp(source, **mix):
    nlp = spacy.blank("en")
    elmo = {"@architectures": "spacy-elmo.ElmoTok2Vec.v2", "mix": "all", "dropout": 0.0}
    model = {"@architectures": "spacy-elmo.ElmoWithTok2Vec.v2", "width": UPSTREAM, "combine": "concat", "elmo": elmo, "tok2vec": TOK2VEC}
    nlp.add_pipe("elmo", config={"source": source, "model": model})
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": _listener(**mix)}})
    nlp.add_pipe("ner", config={"model": {"@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "tok2vec": _listener(**mix)}})
    return nlp


def _task_mix(nlp, name):
    return next(node for node in nlp.get_pipe(name).model.walk() if node.name == "elmo_task_mix")


def _examples(nlp):
    tags = ["D", "N", "V", "P", "D", "N", "."]
    ents = ["O", "U-ANIMAL", "O", "O", "O", "U-THING", "O"]
    return [Example.from_dict(nlp.make_doc(" ".join(WORDS)), {"words": WORDS, "tags": tags, "entities": ents})]


def test_untrained_task_mix_is_exactly_the_shared_tok2vec(reference_source):
    nlp = _nlp(reference_source)
    nlp.initialize(lambda: _examples(nlp))
    doc = nlp.get_pipe("elmo")(nlp.make_doc(" ".join(WORDS)))
    upstream = doc.tensor
    assert upstream.shape == (7, UPSTREAM)
    for name in ("tagger", "ner"):
        task_mix = _task_mix(nlp, name)
        assert task_mix.name == "elmo_task_mix"
        assert task_mix.get_dim("nO") == T_WIDTH
        # the listener reads doc.tensor at prediction; the untrained layer returns its tok2vec part
        out = task_mix.predict([doc])[0]
        np.testing.assert_array_equal(out, upstream[:, 3 * DIM:])


def test_each_component_learns_its_own_mix(reference_source):
    nlp = _nlp(reference_source, dropout=0.0)
    examples = _examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    mixes = {name: _task_mix(nlp, name).get_ref("mix") for name in ("tagger", "ner")}
    projections = {name: _task_mix(nlp, name).get_ref("projection") for name in ("tagger", "ner")}
    for mix in mixes.values():
        np.testing.assert_array_equal(mix.get_param("weights"), np.zeros(3, dtype="float32"))
    for _ in range(4):
        nlp.update(examples, sgd=optimizer)
    w_tagger, w_ner = (mixes[name].get_param("weights") for name in ("tagger", "ner"))
    assert w_tagger.any() and w_ner.any()
    assert not np.allclose(w_tagger, w_ner)
    assert all(p.layers[0].get_param("W").any() for p in projections.values())
    doc = nlp(" ".join(WORDS))
    assert doc.tensor.shape == (7, UPSTREAM)
    assert len(doc) == 7 and all(t.tag_ for t in doc)


def test_mixed_elmo_alone_and_gradients():
    """tok2vec_width = 0: the output is the mix; the input gradient matches finite differences."""
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(5, 3 * 4)).astype("float32"), rng.normal(size=(2, 3 * 4)).astype("float32")]
    received = []

    def identity_forward(model, X, is_train):
        def backprop(dX):
            received.append(dX)
            return []

        return X, backprop

    upstream = Model("upstream", identity_forward, dims={"nO": 12})
    model = TaskMix(upstream, elmo_layers=3, tok2vec_width=0, dropout=0.0)
    model.initialize()
    model.get_ref("mix").set_param("weights", np.array([0.3, -0.2, 0.5], dtype="float32"))
    assert model.get_dim("nO") == 4
    R = [rng.normal(size=(x.shape[0], 4)).astype("float32") for x in X]
    Y, backprop = model.begin_update(X)
    backprop(R)
    dX = received[0]

    def loss(Xs):
        return sum(float((y * r).sum()) for y, r in zip(model.predict(Xs), R))

    eps = 1e-2
    for i, j, k in [(0, 0, 0), (0, 4, 11), (1, 1, 5)]:
        plus = [x.copy() for x in X]
        minus = [x.copy() for x in X]
        plus[i][j, k] += eps
        minus[i][j, k] -= eps
        numeric = (loss(plus) - loss(minus)) / (2 * eps)
        assert dX[i][j, k] == pytest.approx(numeric, rel=1e-2, abs=1e-3)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"mix": "all"}, "a task mix combines the layers"),
        ({"elmo_layers": 0}, "elmo_layers"),
        ({"tok2vec_width": -1}, "tok2vec_width"),
        ({"dropout": 1.5}, "dropout"),
        ({"mix_l2": -1.0}, "mix_l2"),
    ],
)
def test_bad_values_are_clear_errors(kwargs, expected):
    upstream = Model("upstream", lambda model, X, is_train: (X, lambda dY: dY), dims={"nO": 12})
    with pytest.raises(ValueError, match=expected):
        TaskMix(upstream, **kwargs)


def test_upstream_of_the_wrong_shape_names_the_fix(reference_source):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source})  # mix = "scalar": 32 wide
    listener = _listener()
    listener["tok2vec"]["width"] = DIM
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": listener}})
    with pytest.raises(ValueError, match='combine = "concat"'):
        nlp.initialize(lambda: _examples(nlp))


def test_replace_listeners_keeps_the_task_mix(reference_source):
    nlp = _nlp(reference_source)
    examples = _examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    before = nlp("The cat sat .")
    nlp.replace_listeners("elmo", "tagger", ["model.tok2vec.tok2vec"])
    task_mix = _task_mix(nlp, "tagger")
    assert task_mix.name == "elmo_task_mix"
    after = nlp("The cat sat .")
    assert [t.tag_ for t in before] == [t.tag_ for t in after]
