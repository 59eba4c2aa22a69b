"""spacy-elmo.ElmoWithTok2Vec.v2 / ElmoTok2Vec.v2: combine modes, regularisers, token cache."""
import numpy as np
import pytest
import spacy

TEXTS = ["The cat sat on the mat .", "Hello !", "", "A dog barked at the cat ."]
TOK2VEC = {
    "@architectures": "spacy.HashEmbedCNN.v2", "width": 24, "depth": 1, "embed_size": 500,
    "window_size": 1, "maxout_pieces": 2, "subword_features": True, "pretrained_vectors": None,
}


def _nlp(source, combine="residual", width=24, **elmo):
    nlp = spacy.blank("en")
    elmo_cfg = {"@architectures": "spacy-elmo.ElmoTok2Vec.v2", **elmo}
    model = {"@architectures": "spacy-elmo.ElmoWithTok2Vec.v2", "width": width, "combine": combine, "elmo": elmo_cfg, "tok2vec": TOK2VEC}
    nlp.add_pipe("elmo", config={"source": source, "model": model})
    return nlp


@pytest.mark.parametrize("combine", ["residual", "input", "both"])
def test_residual_starts_as_exactly_the_tok2vec(reference_source, combine):
    nlp = _nlp(reference_source, combine=combine)
    nlp.initialize()
    pipe = nlp.get_pipe("elmo")
    docs = list(nlp.pipe(TEXTS))
    base = pipe.model.get_ref("tok2vec").predict(docs)
    for doc, b in zip(docs, base):
        assert doc.tensor.shape == (len(doc), 24)
        np.testing.assert_array_equal(doc.tensor, b)


@pytest.mark.parametrize("combine", ["residual", "input", "both"])
def test_residual_learns_to_use_elmo(reference_source, combine):
    from spacy.training import Example

    nlp = _nlp(reference_source, combine=combine, dropout=0.5)
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": {
        "@architectures": "spacy.Tok2VecListener.v1", "width": 24, "upstream": "elmo"}}})
    words = "The cat sat on the mat .".split()
    examples = [Example.from_dict(nlp.make_doc(" ".join(words)), {"words": words, "tags": ["D", "N", "V", "P", "D", "N", "."]})]
    optimizer = nlp.initialize(lambda: examples)
    projection = nlp.get_pipe("elmo").model.get_ref("projection")
    assert not projection.layers[0].get_param("W").any()
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    assert projection.layers[0].get_param("W").any()
    docs = list(nlp.pipe(TEXTS))
    base = nlp.get_pipe("elmo").model.get_ref("tok2vec").predict(docs)
    assert any(len(doc) and not np.allclose(doc.tensor, b) for doc, b in zip(docs, base))


def test_concat_and_maxout_widths(reference_source):
    concat = _nlp(reference_source, combine="concat", width=32 + 24)
    concat.initialize()
    assert concat("The cat .").tensor.shape == (3, 56)
    maxout = _nlp(reference_source, combine="maxout", width=40)
    maxout.initialize()
    assert maxout("The cat .").tensor.shape == (3, 40)


def test_input_adds_elmo_before_the_encoder(reference_source):
    """combine = "input": the encoder reads embed + projection(ELMo), the projection as wide as the embeddings."""
    nlp = _nlp(reference_source, combine="input")
    nlp.initialize()
    model = nlp.get_pipe("elmo").model
    projection, tok2vec = model.get_ref("projection"), model.get_ref("tok2vec")
    projection.layers[0].set_param("W", model.ops.xp.ones_like(projection.layers[0].get_param("W")) * 0.01)
    docs = [nlp.make_doc(text) for text in TEXTS]
    expected = tok2vec.get_ref("encode").predict(
        [e + p for e, p in zip(tok2vec.get_ref("embed").predict(docs), model.layers[1].predict(docs))]
    )
    for got, want in zip(model.predict(docs), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_both_adds_elmo_before_and_after_the_encoder(reference_source):
    """combine = "both": encode(embed + projection(ELMo)) + output_projection(ELMo), one ELMo run."""
    nlp = _nlp(reference_source, combine="both")
    nlp.initialize()
    model = nlp.get_pipe("elmo").model
    projection, output, tok2vec, elmo = (model.get_ref(name) for name in ("projection", "output_projection", "tok2vec", "elmo"))
    for layer, value in ((projection, 0.01), (output, -0.02)):
        layer.layers[0].set_param("W", model.ops.xp.ones_like(layer.layers[0].get_param("W")) * value)
    docs = [nlp.make_doc(text) for text in TEXTS]
    E = elmo.predict(docs)
    encoded = tok2vec.get_ref("encode").predict([e + p for e, p in zip(tok2vec.get_ref("embed").predict(docs), projection.predict(E))])
    for got, h, o in zip(model.predict(docs), encoded, output.predict(E)):
        assert got.shape == h.shape == o.shape
        np.testing.assert_allclose(got, h + o, rtol=1e-6, atol=1e-6)


def test_both_learns_both_projections(reference_source):
    from spacy.training import Example

    nlp = _nlp(reference_source, combine="both")
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": {
        "@architectures": "spacy.Tok2VecListener.v1", "width": 24, "upstream": "elmo"}}})
    words = "The cat sat on the mat .".split()
    examples = [Example.from_dict(nlp.make_doc(" ".join(words)), {"words": words, "tags": ["D", "N", "V", "P", "D", "N", "."]})]
    optimizer = nlp.initialize(lambda: examples)
    model = nlp.get_pipe("elmo").model
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    for name in ("projection", "output_projection"):
        assert model.get_ref(name).layers[0].get_param("W").any(), name


def test_input_needs_a_tok2vec_with_embed_and_encode(reference_source):
    nlp = spacy.blank("en")
    model = {
        "@architectures": "spacy-elmo.ElmoWithTok2Vec.v2", "width": 24, "combine": "input",
        "elmo": {"@architectures": "spacy-elmo.ElmoTok2Vec.v2"},
        "tok2vec": {"@architectures": "spacy-elmo.ElmoTok2Vec.v2", "width": 24, "project": True},
    }
    with pytest.raises(ValueError, match="embed >> encode"):
        nlp.add_pipe("elmo", config={"source": reference_source, "model": model})


@pytest.mark.parametrize("combine, width, expected", [("residual", 30, "width = 24"), ("concat", 50, "width = 56"), ("input", 30, "width = 24"), ("both", 30, "width = 24")])
def test_wrong_widths_name_the_fix(reference_source, combine, width, expected):
    nlp = _nlp(reference_source, combine=combine, width=width)
    with pytest.raises(ValueError, match=expected):
        nlp.initialize()


def test_unknown_combine_is_a_clear_error(reference_source):
    with pytest.raises(ValueError, match="combine 'sum'.*residual"):
        _nlp(reference_source, combine="sum")


@pytest.mark.parametrize("field, value", [("dropout", -0.5), ("dropout", 1.0), ("mix_l2", -1), ("token_cache_mb", -1)])
def test_bad_regulariser_values_are_clear_errors(reference_source, field, value):
    with pytest.raises(ValueError, match=field):
        _nlp(reference_source, **{field: value})


def _component_tensors(source, texts, **elmo):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": source, "model": {"@architectures": "spacy-elmo.ElmoTok2Vec.v2", **elmo}})
    nlp.initialize()
    return nlp, [d.tensor for d in nlp.pipe(texts)]


def test_token_cache_in_the_component_is_exact_and_hits(reference_source, reference_sentences):
    from spacy_elmo.layers.bilm_wrapper import token_cache_of

    texts = [s for group in reference_sentences for s in group]
    _, exact = _component_tensors(reference_source, texts, token_cache_mb=0)
    nlp, first = _component_tensors(reference_source, texts, token_cache_mb=64)
    cache = token_cache_of(nlp.get_pipe("elmo").bilm_layer)
    misses = cache.misses
    second = [d.tensor for d in nlp.pipe(texts)]
    assert cache.misses == misses and cache.hits > 0  # the second pass computes no token vector
    for a, b, c in zip(exact, first, second):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_no_token_cache_while_the_char_cnn_is_fine_tuned(reference_source):
    from spacy_elmo.layers.bilm_wrapper import token_cache_of

    nlp, _ = _component_tensors(reference_source, TEXTS, fine_tune="all")
    assert token_cache_of(nlp.get_pipe("elmo").bilm_layer) is None
    nlp, _ = _component_tensors(reference_source, TEXTS, fine_tune="top")
    assert token_cache_of(nlp.get_pipe("elmo").bilm_layer) is not None


@pytest.fixture
def native_bf16(monkeypatch):
    """Run the bf16 path even on a CPU without native bf16 products (slow, but the numbers are the same)."""
    monkeypatch.setattr("spacy_elmo.bilm.precision.bf16_is_fast", lambda device: True)


def test_component_in_bf16_matches_the_raw_bf16_bilm(reference_source, reference_bilm, native_bf16):
    import copy

    import torch

    from spacy_elmo.bilm import batch_to_ids

    texts = ["The cat sat on the mat .", "A dog barked ."]
    nlp, tensors = _component_tensors(reference_source, texts, precision="bf16", mix="average")
    fast = copy.deepcopy(reference_bilm).set_precision("bf16")
    for text, tensor in zip(texts, tensors):
        with torch.no_grad():
            expected = fast(batch_to_ids([text.split()])).layers[:, 0].mean(0).numpy()
        np.testing.assert_allclose(tensor, expected, atol=2e-6, rtol=1e-5)


def test_bf16_with_fine_tuning_is_a_clear_error(reference_source):
    with pytest.raises(ValueError, match="precision.*fine_tune"):
        _nlp(reference_source, precision="bf16", fine_tune="top")


def test_bf16_on_a_cpu_without_native_bf16_is_a_clear_error_at_initialize(reference_source, monkeypatch):
    monkeypatch.setattr("spacy_elmo.bilm.precision.bf16_is_fast", lambda device: False)
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source, "model": {"precision": "bf16"}})
    with pytest.raises(ValueError, match="needs native bfloat16"):
        nlp.initialize()


def test_bf16_pipeline_saves_and_loads(reference_source, tmp_path, native_bf16):
    texts = ["The cat sat on the mat .", "A dog barked ."]
    nlp, tensors = _component_tensors(reference_source, texts, precision="bf16")
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    for doc, tensor in zip(loaded.pipe(texts), tensors):
        np.testing.assert_array_equal(doc.tensor, tensor)
