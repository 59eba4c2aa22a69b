"""Fine-tuning lives in the biLM's shim: every owner of the model gets the
biLM's learning-rate scale and trainable state (issue: the pipe applied them,
so a listener's copy after replace_listeners trained at the full rate)."""
import pytest
import spacy
import torch
from spacy.training import Example

from spacy_elmo.layers.bilm_shim import BiLMShim

WORDS = "The cat sat on the mat .".split()
TAGS = ["D", "N", "V", "P", "D", "N", "."]
TOP = ("w_input", "w_hidden", "bias", "w_proj")


class SpyOptimizer:
    """Records the learning-rate scale of every parameter update."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.calls = []

    def __call__(self, key, weights, gradient, *, lr_scale=1.0):
        self.calls.append((key, lr_scale))
        return self.optimizer(key, weights, gradient, lr_scale=lr_scale)

    def __getattr__(self, name):
        return getattr(self.optimizer, name)


def _nlp(source):
    nlp = spacy.blank("en")
    elmo = {"@architectures": "spacy-elmo.ElmoTok2Vec.v2", "width": 32, "fine_tune": "top", "lr_scale": 0.5, "dropout": 0.0}
    nlp.add_pipe("elmo", config={"source": source, "model": elmo})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "elmo"}
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": listener}})
    examples = [Example.from_dict(nlp.make_doc(" ".join(WORDS)), {"words": WORDS, "tags": TAGS})]
    optimizer = nlp.initialize(lambda: examples)
    return nlp, examples, SpyOptimizer(optimizer)


def _shims(pipe):
    return [shim for node in pipe.model.walk() for shim in node.shims if isinstance(shim, BiLMShim)]


def _top_layer(shim):
    return {name: p.detach().clone() for name, p in shim._model.named_parameters() if name.startswith("lstm.layers.1.")}


def _assert_scaled_steps(spy, shim, before):
    calls = [(key, scale) for key, scale in spy.calls if key[0] == shim.id]
    assert {key[1] for key, _ in calls} == {f"lstm.layers.1.{p}" for p in TOP}
    assert all(scale == 0.5 for _, scale in calls)
    after = _top_layer(shim)
    assert all(not torch.equal(before[name], after[name]) for name in before)
    frozen = [name for name, p in shim._model.named_parameters() if p.requires_grad]
    assert sorted(frozen) == sorted(before)


def test_the_pipe_fine_tunes_at_the_scaled_rate(reference_source):
    nlp, examples, spy = _nlp(reference_source)
    (shim,) = _shims(nlp.get_pipe("elmo"))
    before = _top_layer(shim)
    # spaCy applies an upstream's gradients at its next finish_update: two updates
    for _ in range(2):
        nlp.update(examples, sgd=spy)
    _assert_scaled_steps(spy, shim, before)


@pytest.mark.parametrize("elmo_role", ["trained", "frozen", "annotating"])
def test_a_listener_copy_fine_tunes_at_the_scaled_rate(reference_source, elmo_role):
    nlp, examples, spy = _nlp(reference_source)
    nlp.replace_listeners("elmo", "tagger", ["model.tok2vec"])
    (copy,) = _shims(nlp.get_pipe("tagger"))
    (original,) = _shims(nlp.get_pipe("elmo"))
    assert copy is not original and copy.lr_scale == 0.5 and copy.fine_tune == "top"
    before, original_before = _top_layer(copy), _top_layer(original)
    kwargs = {"exclude": ["elmo"]} if elmo_role == "frozen" else {"annotates": ["elmo"]} if elmo_role == "annotating" else {}
    for _ in range(2):
        nlp.update(examples, sgd=spy, **kwargs)
    _assert_scaled_steps(spy, copy, before)
    # the pipe's own biLM no longer gets gradients (a copied shim keeps its id, so compare the weights)
    assert all(torch.equal(original_before[name], value) for name, value in _top_layer(original).items())


def test_trainable_state_survives_serialization(reference_source):
    nlp, examples, spy = _nlp(reference_source)
    data = nlp.to_bytes()
    (shim,) = _shims(nlp.get_pipe("elmo"))
    trainable = sorted(name for name, p in shim._model.named_parameters() if p.requires_grad)
    assert trainable == sorted(f"lstm.layers.1.{p}" for p in TOP)
    loaded = spacy.blank("en")
    elmo = {"@architectures": "spacy-elmo.ElmoTok2Vec.v2", "width": 32, "fine_tune": "top", "lr_scale": 0.5, "dropout": 0.0}
    loaded.add_pipe("elmo", config={"source": reference_source, "model": elmo})
    loaded.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": {
        "@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "elmo"}}})
    loaded.from_bytes(data)
    (shim,) = _shims(loaded.get_pipe("elmo"))
    assert sorted(name for name, p in shim._model.named_parameters() if p.requires_grad) == trainable
