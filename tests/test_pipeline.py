"""The `elmo` component: Doc.tensor, batching, long docs, serialization, errors."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import spacy

from .conftest import bilm_average

ROUNDING = dict(atol=2e-6, rtol=1e-5)
TEXTS = [
    "The U.S. Centers for Disease Control and Prevention initially advised school systems to close .",
    "Hello !",
    "",
    "   ",
    "One",
    "A • non-ASCII token , a token that is far longer than fifty characters: " + "x" * 80 + " .",
    "Ünïcödé 東京 🙂 text\twith\ttabs and\nnewlines .",
]


def test_factory_metadata():
    nlp = spacy.blank("en")
    meta = nlp.get_factory_meta("elmo")
    assert meta.assigns == ["doc.tensor"]
    assert meta.default_config["source"] == "small"
    assert meta.default_config["model"]["@architectures"] == "spacy-elmo.ElmoTok2Vec.v2"


def _expected(bilm, doc):
    """The biLM's layer average over the doc's words; whitespace tokens are not read and get zeros."""
    expected = np.zeros((len(doc), 32), dtype="float32")
    words = [t for t in doc if not t.is_space]
    if words:
        expected[[t.i for t in words]] = bilm_average(bilm, [t.text for t in words])
    return expected


def test_tensor_is_the_average_of_the_bilm_layers(elmo_nlp, reference_bilm):
    for text in TEXTS:
        doc = elmo_nlp(text)
        assert doc.tensor.shape == (len(doc), 32) and doc.tensor.dtype == np.float32
        if len(doc):
            np.testing.assert_allclose(doc.tensor, _expected(reference_bilm, doc), **ROUNDING)


@pytest.mark.parametrize("text", ["The  cat\n\nsat .", " ", "\n\n\n", "word \t\t word"])
def test_whitespace_tokens_are_not_read_and_get_zeros(elmo_nlp, reference_bilm, text):
    doc = elmo_nlp(text)
    spaces = [t.i for t in doc if t.is_space]
    assert spaces, "the text must make whitespace tokens"
    assert not doc.tensor[spaces].any()
    np.testing.assert_allclose(doc.tensor, _expected(reference_bilm, doc), **ROUNDING)


def test_pipe_with_mixed_lengths_keeps_order_and_values(elmo_nlp, reference_bilm, reference_sentences):
    texts = [s for group in reference_sentences for s in group] + TEXTS
    singles = [elmo_nlp(t).tensor for t in texts]
    for batch_size in (1, 3, 1000):
        docs = list(elmo_nlp.pipe(texts, batch_size=batch_size))
        assert [d.text for d in docs] == texts
        for doc, single in zip(docs, singles):
            np.testing.assert_allclose(doc.tensor, single, **ROUNDING)
    reversed_docs = list(elmo_nlp.pipe(texts[::-1]))
    for doc, single in zip(reversed_docs[::-1], singles):
        np.testing.assert_allclose(doc.tensor, single, **ROUNDING)


def test_empty_whitespace_and_one_token_docs(elmo_nlp):
    empty, space, one = elmo_nlp(""), elmo_nlp("   "), elmo_nlp("word")
    assert empty.tensor.shape == (0, 32)
    assert space.tensor.shape == (len(space), 32) and len(space) == 1
    assert one.tensor.shape == (1, 32) and np.abs(one.tensor).sum() > 0
    docs = list(elmo_nlp.pipe(["", "", ""]))
    assert [d.tensor.shape for d in docs] == [(0, 32)] * 3


def test_long_doc_windows_average_their_overlap(reference_source, reference_bilm):
    nlp = spacy.blank("en")
    config = {"source": reference_source, "model": {"get_spans": {"@span_getters": "spacy-elmo.strided_spans.v1", "window": 8, "stride": 5}}}
    nlp.add_pipe("elmo", config=config)
    nlp.initialize()
    words = [f"w{i % 7}" for i in range(20)]
    doc = nlp(" ".join(words))
    # windows [0:8] [5:13] [10:18] [15:20]; tokens in two windows get the mean
    expected = np.zeros((20, 32), dtype="float32")
    counts = np.zeros(20)
    for start, end in ((0, 8), (5, 13), (10, 18), (15, 20)):
        expected[start:end] += bilm_average(reference_bilm, words[start:end])
        counts[start:end] += 1
    np.testing.assert_allclose(doc.tensor, expected / counts[:, None], **ROUNDING)


def test_sentences_when_set(reference_source, reference_bilm):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("elmo", config={"source": reference_source})
    nlp.initialize()
    doc = nlp("The cat sat . It was happy about it !")
    sents = list(doc.sents)
    assert len(sents) == 2
    for sent in sents:
        np.testing.assert_allclose(
            doc.tensor[sent.start : sent.end], bilm_average(reference_bilm, [t.text for t in sent]), **ROUNDING
        )
    # without boundaries (and without the rule-based sentences of sent_or_window_spans.v2,
    # the default) the same words are one window: different context, different vectors
    no_sents = spacy.blank("en")
    v1 = {"@span_getters": "spacy-elmo.sent_or_window_spans.v1"}
    no_sents.add_pipe("elmo", config={"source": reference_source, "model": {"get_spans": v1}})
    no_sents.initialize()
    assert not np.allclose(no_sents(doc.text).tensor, doc.tensor, atol=1e-3)


def test_sentencized_spans_without_a_sentencizer(reference_source, reference_bilm):
    # sent_or_window_spans.v2 cuts a doc without boundaries at the rule-based sentences
    # for the biLM only: the same vectors as with a sentencizer pipe, the doc unannotated
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source, "model": {"get_spans": {"@span_getters": "spacy-elmo.sent_or_window_spans.v2"}}})
    nlp.initialize()
    doc = nlp("The cat sat . It was happy about it !")
    assert not doc.has_annotation("SENT_START")
    for start, end in ((0, 4), (4, 10)):
        np.testing.assert_allclose(
            doc.tensor[start:end], bilm_average(reference_bilm, [t.text for t in doc[start:end]]), **ROUNDING
        )


@pytest.mark.parametrize("mix, width", [("average", 32), ("top", 32), ("all", 96), ("scalar", 32)])
def test_mixes(reference_source, reference_bilm, mix, width):
    import torch

    from spacy_elmo.bilm import batch_to_ids

    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source, "model": {"mix": mix, "width": width}})
    nlp.initialize()
    doc = nlp("Mixes of the layers .")
    with torch.no_grad():
        layers = reference_bilm(batch_to_ids([[t.text for t in doc]])).layers[:, 0].numpy()
    expected = {
        "average": layers.mean(0),
        "scalar": layers.mean(0),
        "top": layers[-1],
        "all": np.concatenate(list(layers), axis=-1),
    }[mix]
    assert doc.tensor.shape == (len(doc), width)
    np.testing.assert_allclose(doc.tensor, expected, **ROUNDING)


def test_projection_to_width(reference_source):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source, "model": {"width": 12, "project": True}})
    nlp.initialize()
    assert nlp("Projected vectors .").tensor.shape == (3, 12)
    assert nlp.get_pipe("elmo").model.get_dim("nO") == 12


def test_similarity_without_static_vectors(elmo_nlp):
    doc = elmo_nlp("The cat sat on the mat .")
    assert doc[1].vector.shape == (32,)
    np.testing.assert_allclose(doc[1].vector, doc.tensor[1])
    np.testing.assert_allclose(doc[1:3].vector, doc.tensor[1:3].mean(0), rtol=1e-6)
    np.testing.assert_allclose(doc.vector, doc.tensor.mean(0), rtol=1e-6)
    spaced = elmo_nlp("The  cat\n\nsat .")
    words = [t.i for t in spaced if not t.is_space]
    assert len(words) < len(spaced)
    np.testing.assert_allclose(spaced.vector, spaced.tensor[words].mean(0), rtol=1e-6)
    assert not elmo_nlp(" ").vector.any()
    a, b = doc.tensor[1], doc.tensor[5]
    assert doc[1].similarity(doc[5]) == pytest.approx(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), rel=1e-5)
    assert elmo_nlp("cat").similarity(elmo_nlp("cat")) == pytest.approx(1.0, abs=1e-6)


def test_vector_hooks_with_static_vectors(reference_source):
    nlp = spacy.blank("en")
    nlp.vocab.set_vector("cat", np.ones((5,), dtype="float32"))
    nlp.add_pipe("elmo", config={"source": reference_source})
    nlp.initialize()
    doc = nlp("the cat sat")
    assert doc[1].vector.shape == (32,)
    np.testing.assert_allclose(doc[1].vector, doc.tensor[1])
    np.testing.assert_allclose(doc.vector, doc.tensor.mean(0), rtol=1e-6)
    spaced = nlp("The  cat\n\nsat .")
    words = [t.i for t in spaced if not t.is_space]
    assert len(words) < len(spaced)
    np.testing.assert_allclose(spaced.vector, spaced.tensor[words].mean(0), rtol=1e-6)
    assert not nlp(" ").vector.any()
    assert doc[0].has_vector
    off = spacy.blank("en")
    off.vocab.set_vector("cat", np.ones((5,), dtype="float32"))
    off.add_pipe("elmo", config={"source": reference_source, "set_vector_hooks": False})
    off.initialize()
    assert off("the cat sat")[1].vector.shape == (5,)  # static vectors win without hooks


def _copy_fixture(reference_options, reference_weights, folder, allennlp_names=False):
    folder.mkdir()
    names = ("elmo_2x4_options.json", "elmo_2x4_weights.hdf5") if allennlp_names else ("options.json", "weights.hdf5")
    shutil.copy(reference_options, folder / names[0])
    shutil.copy(reference_weights, folder / names[1])
    return folder


@pytest.mark.parametrize("allennlp_names", [False, True])
def test_serialization_without_the_weight_files(tmp_path, reference_options, reference_weights, allennlp_names):
    folder = _copy_fixture(reference_options, reference_weights, tmp_path / "weights", allennlp_names)
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": str(folder)})
    nlp.initialize()
    texts = ["Serialized pipelines need no weight files .", "", "Two"]
    expected = [d.tensor.copy() for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipeline")
    data = nlp.to_bytes()
    shutil.rmtree(folder)
    loaded = spacy.load(tmp_path / "pipeline")
    for doc, tensor in zip(loaded.pipe(texts), expected):
        assert np.array_equal(doc.tensor, tensor)
    from_bytes = spacy.blank("en")
    from_bytes.add_pipe("elmo", config={"source": str(folder)})
    from_bytes.from_bytes(data)
    for doc, tensor in zip(from_bytes.pipe(texts), expected):
        assert np.array_equal(doc.tensor, tensor)
    # what is stored: no pickles, the biLM frozen again
    bilm = loaded.get_pipe("elmo").model.get_ref("bilm")
    assert not any(p.requires_grad for p in bilm.layers[0].shims[0]._model.parameters())


def test_multiprocessing(elmo_nlp):
    texts = [f"Sentence number {i} with a few words ." for i in range(12)] + ["", "x"]
    single = [d.tensor for d in elmo_nlp.pipe(texts, batch_size=4)]
    multi = [d.tensor for d in elmo_nlp.pipe(texts, batch_size=4, n_process=2)]
    assert len(multi) == len(single)
    for a, b in zip(single, multi):
        np.testing.assert_allclose(a, b, **ROUNDING)


def test_pipeline_pickles_and_runs_under_spawn(tmp_path, elmo_nlp, reference_source):
    """``nlp.pipe(n_process=2)`` with the spawn start method (macOS / Windows
    default) pickles the pipeline: span getters and hooks must be picklable."""
    import pickle

    texts = ["The cat sat .", "Hello !", ""]
    copy = pickle.loads(pickle.dumps(elmo_nlp))
    for doc, text in zip(copy.pipe(texts), texts):
        assert np.array_equal(doc.tensor, elmo_nlp(text).tensor)
    script = tmp_path / "spawn_pipe.py"
    script.write_text(f"""
import json, multiprocessing, sys
import numpy as np
import spacy

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={{"source": {json.dumps(reference_source)}}})
    nlp.initialize()
    texts = [f"Sentence number {{i}} ." for i in range(8)] + ["", "x"]
    single = [d.tensor for d in nlp.pipe(texts, batch_size=2)]
    docs = list(nlp.pipe(texts, batch_size=2, n_process=2))
    multi = [d.tensor for d in docs]
    assert len(multi) == len(single)
    # the workers set no hooks (they would be dropped with a W109 warning per doc); put them back here
    from spacy_elmo.pipeline import install_vector_hooks
    install_vector_hooks(docs[0])
    assert np.allclose(docs[0].vector, nlp(texts[0]).vector, atol=1e-5) and "similarity" in docs[0].user_hooks
    print(json.dumps(max(float(np.abs(a - b).max()) if a.size else 0.0 for a, b in zip(single, multi))))
""")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.strip().splitlines()[-1]) <= ROUNDING["atol"]
    assert "W109" not in result.stderr and "W007" not in result.stderr


def test_100k_token_doc_memory_is_bounded(tmp_path, reference_source):
    """Peak memory of a 100,000-token doc, measured in a fresh process (not timed)."""
    script = f"""
import resource, json, spacy
from spacy.tokens import Doc
nlp = spacy.blank("en")
nlp.add_pipe("elmo", config={{"source": {json.dumps(reference_source)}}})
nlp.initialize()
nlp("warm up .")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
doc = Doc(nlp.vocab, words=[f"word{{i % 5000}}" for i in range(100_000)])
doc = nlp(doc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"shape": list(doc.tensor.shape), "zeros": int((abs(doc.tensor).sum(1) == 0).sum()), "peak_mb": (after - before) / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"100k-token doc: peak RSS growth {result['peak_mb']:.0f} MB")
    assert result["shape"] == [100_000, 32]
    assert result["zeros"] == 0
    # the doc's own tensor is 12.8 MB; windows in token-budget batches keep the rest small
    assert result["peak_mb"] < 400


@pytest.mark.parametrize(
    "config, message",
    [
        ({"model": {"mix": "sum"}}, "Invalid mix 'sum'"),
        ({"model": {"width": -3}}, "Invalid width -3"),
        ({"model": {"project": True}}, "project = true needs a width"),
        ({"model": {"max_batch_items": 0}}, "Invalid max_batch_items 0"),
        ({"model": {"get_spans": {"@span_getters": "spacy-elmo.strided_spans.v1", "window": 10, "stride": 20}}}, "Invalid stride 20"),
    ],
)
def test_bad_config_fails_at_add_pipe(config, message):
    nlp = spacy.blank("en")
    with pytest.raises(Exception, match=message):
        nlp.add_pipe("elmo", config=config)


def test_width_that_disagrees_with_the_weights(reference_source):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source, "model": {"width": 256}})
    with pytest.raises(ValueError, match=r"width = 256.*give 32.*Set width = 32.*project = true"):
        nlp.initialize()


def test_unknown_source_and_missing_or_corrupt_files(tmp_path, reference_options):
    for source, message in (
        ("no-such-model", "Unknown ELMo source 'no-such-model'"),
        (str(tmp_path), "holds no options/weights pair"),
        ([str(reference_options), str(tmp_path / "w.hdf5")], "w.hdf5 not found"),
    ):
        nlp = spacy.blank("en")
        nlp.add_pipe("elmo", config={"source": source})
        with pytest.raises(ValueError, match=message):
            nlp.initialize()
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": [str(reference_options), str(corrupt)]})
    with pytest.raises(ValueError, match="corrupt.hdf5 is not an HDF5 file"):
        nlp.initialize()


def test_predict_before_initialize_is_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo")
    with pytest.raises(ValueError, match=r"no biLM weights yet.*nlp.initialize"):
        nlp("No weights yet .")


def test_listener_width_is_checked(reference_source):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source})
    tagger_model = {
        "@architectures": "spacy.Tagger.v2",
        "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 64, "upstream": "elmo"},
    }
    nlp.add_pipe("tagger", config={"model": tagger_model})
    with pytest.raises(ValueError, match="expects width 64, but 'elmo' produces 32"):
        nlp.initialize(lambda: [spacy.training.Example.from_dict(nlp.make_doc("a b"), {"tags": ["X", "Y"]})])


def test_threads_setting_is_applied_and_restored(reference_source, monkeypatch):
    import torch

    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source, "threads": 1})
    nlp.initialize()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    calls = []
    original = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), original(n))[1])
    try:
        doc = nlp("The cat sat .")
        assert calls == [1, 2] and torch.get_num_threads() == 2
        assert doc.tensor.shape == (4, 32)
    finally:
        original(before)


@pytest.mark.parametrize("threads", [-1, 1.5, "2"])
def test_bad_threads_value_is_a_clear_error(reference_source, threads):
    nlp = spacy.blank("en")
    with pytest.raises(Exception, match="threads"):
        nlp.add_pipe("elmo", config={"source": reference_source, "threads": threads})
