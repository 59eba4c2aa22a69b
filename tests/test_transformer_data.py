"""spacy-transformers interop: ``store_layers`` (every biLM layer in ``doc._.trf_data``)
and spacy-transformers' ``TransformerListener`` listening to the ``elmo`` pipe."""
import os

import numpy as np
import pytest
import spacy
from spacy.training import Example

if not os.environ.get("CI"):  # in the test extra: CI must run these
    pytest.importorskip("spacy_transformers")

ROUNDING = dict(atol=2e-6, rtol=1e-5)
TAGGED = [("The cat sat on the mat .", "DET NOUN VERB ADP DET NOUN PUNCT"), ("Dogs bark loudly .", "NOUN VERB ADV PUNCT")]


def test_store_layers_puts_every_bilm_layer_on_the_doc(reference_source, reference_bilm):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source, "store_layers": True})
    nlp.initialize()
    doc = nlp("The  cat sat .")
    data = doc._.trf_data
    out = data.model_output
    assert out.last_hidden_state.shape == (1, len(doc), 32)
    np.testing.assert_array_equal(out.last_hidden_state[0], doc.tensor)
    assert len(out.hidden_states) == 3 and all(h.shape == (1, len(doc), 32) for h in out.hidden_states)
    words = [t for t in doc if not t.is_space]
    import torch

    with torch.no_grad():
        expected = reference_bilm(reference_bilm.batch_to_ids([[t.text for t in words]])).layers[:, 0].numpy()
    for layer in range(3):
        np.testing.assert_allclose(out.hidden_states[layer][0, [t.i for t in words]], expected[layer], **ROUNDING)
    assert not out.hidden_states[2][0, 1].any()  # the whitespace token: zeros, as in doc.tensor
    # the layers' average is the scalar mix's starting point: doc.tensor
    np.testing.assert_allclose(np.mean([h[0] for h in out.hidden_states], axis=0), doc.tensor, **ROUNDING)
    assert list(data.align.lengths) == [1] * len(doc)
    empty = nlp("")
    assert empty._.trf_data.model_output.last_hidden_state.shape == (1, 0, 32)


def test_store_layers_must_be_a_bool(reference_source):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="store_layers"):
        nlp.add_pipe("elmo", config={"source": reference_source, "store_layers": "yes"})


def _tagger_listening(listener="trf", grad_factor=1.0):
    if listener == "tok2vec":
        tok2vec = {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "elmo"}
    else:
        tok2vec = {
            "@architectures": "spacy-transformers.TransformerListener.v1",
            "grad_factor": grad_factor,
            "pooling": {"@layers": "reduce_mean.v1"},
            "upstream": "elmo",
        }
    return {"@architectures": "spacy.Tagger.v2", "tok2vec": tok2vec}


def _train(reference_source, listener, steps=25):
    spacy.util.fix_random_seed(0)  # the same dropout draws for both listeners, whatever ran before
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source})
    nlp.add_pipe("tagger", config={"model": _tagger_listening(listener)})
    examples = [Example.from_dict(nlp.make_doc(t), {"tags": tags.split()}) for t, tags in TAGGED]
    optimizer = nlp.initialize(lambda: examples)
    mix = nlp.get_pipe("elmo").elmo_model.get_ref("mix")
    before = np.concatenate([mix.get_param("weights"), mix.get_param("gamma")]).copy()
    losses = [nlp.update(examples, sgd=optimizer, losses={}) for _ in range(steps)]
    return nlp, losses, before, np.concatenate([mix.get_param("weights"), mix.get_param("gamma")])


def test_transformer_listener_listens_to_elmo_in_training_and_at_inference(reference_source):
    nlp, losses, before, after = _train(reference_source, "trf")
    assert nlp.get_pipe("elmo").listening_components == ["tagger"]
    _, native, _, _ = _train(reference_source, "tok2vec")
    # the listener's gradient reaches the pipe: its loss, its learned mix
    assert losses[-1]["elmo"] > 0 and not np.allclose(after, before)
    # and it trains exactly as spaCy's own listener (mean pooling over one row per token)
    assert losses[0]["tagger"] == pytest.approx(native[0]["tagger"], rel=1e-5)
    assert losses[-1]["tagger"] < 0.85 * losses[0]["tagger"]
    assert losses[-1]["tagger"] == pytest.approx(native[-1]["tagger"], rel=1e-4)
    doc = nlp("The cat sat on the mat .")
    np.testing.assert_array_equal(doc._.trf_data.model_output.last_hidden_state[0], doc.tensor)
    assert len(doc._.trf_data.align.lengths) == len(doc)


def test_transformer_listener_with_a_frozen_annotating_elmo(reference_source, tmp_path):
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source})
    nlp.add_pipe("tagger", config={"model": _tagger_listening(grad_factor=0.0)})
    examples = [Example.from_dict(nlp.make_doc(t), {"tags": tags.split()}) for t, tags in TAGGED]
    optimizer = nlp.initialize(lambda: examples)
    mix = nlp.get_pipe("elmo").elmo_model.get_ref("mix")
    before = np.concatenate([mix.get_param("weights"), mix.get_param("gamma")]).copy()
    # elmo frozen but annotating: the listener reads doc._.trf_data set by the pipe
    first = nlp.update(examples, sgd=optimizer, exclude=["elmo"], annotates=["elmo"], losses={})
    for _ in range(25):
        last = nlp.update(examples, sgd=optimizer, exclude=["elmo"], annotates=["elmo"], losses={})
    assert last["tagger"] < 0.85 * first["tagger"]
    np.testing.assert_array_equal(np.concatenate([mix.get_param("weights"), mix.get_param("gamma")]), before)
    doc = nlp("Dogs bark loudly .")
    nlp.to_disk(tmp_path / "p")
    again = spacy.load(tmp_path / "p")
    assert [t.tag_ for t in again("Dogs bark loudly .")] == [t.tag_ for t in doc]
