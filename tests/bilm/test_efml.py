"""ELMoForManyLangs folders: parity with EFML's own code, its id rules, safe unpickling, errors, spaCy."""
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import spacy
import torch

from spacy_elmo.bilm import BiLM, EFMLError, WeightFileError, is_efml_folder, load_efml, save_bilm
from spacy_elmo.bilm.efml import ARCHITECTURES, read_architecture
from spacy_elmo.loaders import load_source

from .efml_model import ARCHITECTURE, CHARS, WORDS, write_efml_model

SENTENCES = [
    ["the", "cat", "sat", "."],
    ["der", "Hund", ",", "die", "Donaudampfschifffahrt", "!"],  # a token over the 10-character limit
    ["a"],
    ["The", "日本", "🙂", "", "x\u3000y", "x y", "ÄÖÜ", "ß"],  # unknown words and characters, empty, spaces
]


def efml_reference():
    """EFML's own Embedder (a test dependency); in CI it must be there."""
    try:
        from elmoformanylangs import Embedder
    except ImportError as err:
        if os.environ.get("CI"):
            pytest.fail(f"elmoformanylangs is not installed ({err}): pip install -e '.[test]'")
        pytest.skip("elmoformanylangs not installed")
    return Embedder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_efml_model(tmp_path_factory.mktemp("efml") / "model")


CHARS_ONLY = {**ARCHITECTURE, "token_embedder": {**ARCHITECTURE["token_embedder"], "word_dim": 0}}
NO_CLIP_TANH = {**ARCHITECTURE, "encoder": {**ARCHITECTURE["encoder"], "cell_clip": 0, "proj_clip": 0, "n_layers": 3},
                "token_embedder": {**ARCHITECTURE["token_embedder"], "activation": "tanh", "n_highway": 0}}


@pytest.mark.parametrize("arch_in,legacy,architecture", [
    ("file", True, ARCHITECTURE), ("config", False, ARCHITECTURE), ("file", True, CHARS_ONLY), ("file", False, NO_CLIP_TANH),
], ids=["published-layout", "arch-in-config-zip-format", "chars-only", "no-clip-tanh-3-layers"])
def test_equals_elmoformanylangs_own_outputs(tmp_path, arch_in, legacy, architecture):
    folder = write_efml_model(tmp_path / "m", seed=3, arch_in=arch_in, legacy=legacy, architecture=architecture)
    n_layers = architecture["encoder"]["n_layers"]
    Embedder = efml_reference()
    reference = Embedder(str(folder), batch_size=64)
    reference.model.encoder.reset_states()  # EFML carries LSTM state across calls: start from zeros
    expected = reference.sents2elmo(SENTENCES, output_layer=-2)  # (3, n_tokens, 2P) each: layer 0 + 2 LSTM layers
    bilm = load_efml(folder)
    with torch.no_grad():
        layers = bilm(bilm.batch_to_ids(SENTENCES)).layers
    for i, sentence in enumerate(SENTENCES):
        ours = layers[:, i, : len(sentence)].numpy()
        assert ours.shape == expected[i].shape == (n_layers + 1, len(sentence), 16)
        np.testing.assert_allclose(ours, expected[i], atol=1e-5, rtol=0)


def test_every_sentence_starts_from_a_fresh_state(folder):
    bilm = load_efml(folder)
    with torch.no_grad():
        together = bilm(bilm.batch_to_ids(SENTENCES)).layers
        for i, sentence in enumerate(SENTENCES):
            alone = bilm(bilm.batch_to_ids([sentence])).layers[:, 0]
            # a carried state would differ by far more than float32 rounding (values reach ~4)
            torch.testing.assert_close(together[:, i, : len(sentence)], alone, atol=1e-6, rtol=1e-6)


def test_token_ids_follow_efml_code(folder):
    bilm = load_efml(folder)
    c = {ch: i + 1 for i, ch in enumerate(CHARS)}  # shifted by one: 0 is a padding token
    w = {word: i + 1 for i, word in enumerate(WORDS)}
    ids = bilm.batch_to_ids([["Hund", "Donaudampfschifffahrt", "日", "x\u3000"], []])
    assert ids.shape == (2, 4, 12 + 1)  # 12 characters + the word id
    # <eow>'s id first and <bow>'s last: EFML's code swaps the two names, and its models learnt so
    assert ids[0, 0].tolist() == [c["<eow>"], c["H"], c["u"], c["n"], c["d"], c["<bow>"]] + [c["<pad>"]] * 6 + [w["Hund"]]
    # cut to max_characters_per_token - 2 code points before both lookups
    assert ids[0, 1, 1:11].tolist() == [c[ch] for ch in "Donaudampf"]
    assert ids[0, 1, 11].item() == c["<bow>"] and ids[0, 1, 12].item() == w["<oov>"]
    assert ids[0, 2, 1].item() == c["<oov>"]
    # a dictionary line whose entry is whitespace is U+3000, as EFML reads it
    assert ids[0, 3, 2].item() == c["\u3000"]
    assert ids[1].abs().sum() == 0  # padding tokens
    bos, eos = bilm.boundary_ids.tolist()
    assert bos[:3] == [c["<eow>"], c["<bos>"], c["<bow>"]] and bos[-1] == w["<bos>"]
    assert eos[:3] == [c["<eow>"], c["<eos>"], c["<bow>"]] and eos[-1] == w["<eos>"]


def test_long_token_is_cut_before_the_word_lookup(tmp_path):
    bilm = load_efml(write_efml_model(tmp_path / "m"))
    c = {ch: i + 1 for i, ch in enumerate(CHARS)}
    row = bilm.batch_to_ids([["abcdefghijklmnop"]])[0, 0].tolist()
    assert row[1:11] == [c[ch] for ch in "abcdefghij"] and row[11] == c["<bow>"]


def test_empty_and_one_token_sentences(folder):
    bilm = load_efml(folder)
    with torch.no_grad():
        out = bilm(bilm.batch_to_ids([[], ["a"]]))
    assert out.layers.shape == (3, 2, 1, 16)
    assert out.layers[:, 0].abs().sum() == 0 and out.layers[:, 1].abs().sum() > 0


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch EXPLOITED",))


def test_a_pickle_with_code_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    folder = write_efml_model(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    with open(folder / "encoder.pkl", "wb") as f:
        pickle.dump({"forward_layer_0.input_linearity.weight": _Exploit()}, f)
    with pytest.raises(EFMLError, match=r"encoder\.pkl safely.*never code"):
        load_efml(folder)
    assert not (tmp_path / "EXPLOITED").exists()


def test_damaged_and_missing_files_are_named(tmp_path):
    folder = write_efml_model(tmp_path / "m")
    data = (folder / "token_embedder.pkl").read_bytes()
    (folder / "token_embedder.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(EFMLError, match=r"token_embedder\.pkl safely"):
        load_efml(folder)
    folder = write_efml_model(tmp_path / "m2")
    (folder / "word.dic").unlink()
    with pytest.raises(EFMLError, match=r"word\.dic not found"):
        load_efml(folder)
    folder = write_efml_model(tmp_path / "m3")
    (folder / "char.dic").write_text("a\t0\n<bow>\t1\n", encoding="utf8")
    with pytest.raises(EFMLError, match=r"char\.dic has no entry '<eow>'"):
        load_efml(folder)


def test_weights_that_do_not_fit_the_dictionaries(tmp_path):
    folder = write_efml_model(tmp_path / "m")
    with open(folder / "word.dic", "a", encoding="utf8") as f:
        f.write(f"extra\t{len(WORDS)}\n")
    with pytest.raises(EFMLError, match=r"word_emb_layer\.embedding\.weight' has shape \(13, 5\), the architecture implies \(14, 5\)"):
        load_efml(folder)


def test_architecture_sources(tmp_path):
    folder = write_efml_model(tmp_path / "m")
    assert read_architecture(folder)["token_embedder"]["word_dim"] == 5
    # the published models name EFML's shipped file by the authors' path; it is not in the folder
    (folder / "arch.json").unlink()
    name = "cnn_50_100_512_4096_sample.json"
    (folder / "config.json").write_text(json.dumps({"config_path": f"/users4/conll18st/configs/{name}"}))
    assert read_architecture(folder) == ARCHITECTURES[name]
    (folder / "config.json").write_text(json.dumps({"config_path": "/home/x/mine.json"}))
    with pytest.raises(EFMLError, match=r"'mine\.json'.*next to config\.json"):
        read_architecture(folder)


def test_no_bilm_tf_export(folder, tmp_path):
    with pytest.raises(WeightFileError, match="no bilm-tf options.json"):
        save_bilm(load_efml(folder), tmp_path / "o.json", tmp_path / "w.hdf5")


def test_every_source_form_loads(folder, tmp_path):
    assert is_efml_folder(folder) and not is_efml_folder(tmp_path)
    archive = tmp_path / "efml.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in folder.iterdir():
            z.write(path, f"model/{path.name}")
    a, b = load_source(folder), load_source(archive)
    assert isinstance(a, BiLM) and a.vocab == b.vocab
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)
    from spacy.util import registry

    import spacy_elmo.registry  # noqa: F401  (adds model_loaders)

    loaded = registry.model_loaders.get("spacy-elmo.EFMLLoader.v1")(str(folder))()
    assert loaded.config == a.config


def test_in_a_german_pipeline_and_back_from_disk(folder, tmp_path):
    nlp = spacy.blank("de")
    nlp.add_pipe("elmo", config={"source": str(folder)})
    nlp.initialize()
    doc = nlp("Der Hund sah die Katze .")
    assert doc.tensor.shape == (6, 16) and np.isfinite(doc.tensor).all() and np.abs(doc.tensor).sum() > 0
    nlp.to_disk(tmp_path / "pipeline")
    (folder / "encoder.pkl").rename(folder / "encoder.pkl.away")  # the saved pipeline needs no model files
    try:
        again = spacy.load(tmp_path / "pipeline")
        np.testing.assert_array_equal(again("Der Hund sah die Katze .").tensor, doc.tensor)
    finally:
        (folder / "encoder.pkl.away").rename(folder / "encoder.pkl")


def test_save_efml_round_trips_and_elmoformanylangs_reads_it(folder, tmp_path):
    from spacy_elmo.bilm import save_efml

    bilm = load_efml(folder)
    out = save_efml(bilm, tmp_path / "saved")
    again = load_efml(out)
    assert again.config == bilm.config and again.vocab == bilm.vocab
    for (name, a), b in zip(bilm.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    Embedder = efml_reference()
    reference = Embedder(str(out), batch_size=64)
    reference.model.encoder.reset_states()
    expected = reference.sents2elmo(SENTENCES, output_layer=-2)
    with torch.no_grad():
        layers = bilm(bilm.batch_to_ids(SENTENCES)).layers
    for i, sentence in enumerate(SENTENCES):
        np.testing.assert_allclose(layers[:, i, : len(sentence)].numpy(), expected[i], atol=1e-5, rtol=0)
