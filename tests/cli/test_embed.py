"""`python -m spacy_elmo embed`: formats, output modes, order, errors."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from spacy_elmo.bilm import batch_to_ids
from spacy_elmo.cli import main

SENTENCES = [
    ["The", "cat", "sat", "on", "the", "mat", "."],
    [],
    ["Bonjour", "•", "東京", "🙂"],
    ["x" * 70],
    ["A", "much", "longer", "sentence", "with", "more", "tokens", "than", "any", "other", "one", "here", "."],
    ["One"],
]


@pytest.fixture
def txt_input(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(" ".join(s) for s in SENTENCES) + "\n", encoding="utf8")
    return path


@pytest.fixture
def expected_layers(reference_bilm):
    out = []
    with torch.no_grad():
        for s in SENTENCES:
            out.append(reference_bilm(batch_to_ids([s])).layers[:, 0].numpy())
    return out


def _run(reference_options, reference_weights, inp, out, *flags):
    return main(["embed", str(reference_options), str(reference_weights), str(inp), str(out), "--quiet", *flags])


@pytest.mark.parametrize("mode", ["all", "top", "average"])
@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_txt_all_modes(tmp_path, reference_options, reference_weights, txt_input, expected_layers, mode, batch_size):
    out = tmp_path / "out.hdf5"
    assert _run(reference_options, reference_weights, txt_input, out, f"--{mode}", "--batch-size", str(batch_size)) == 0
    with h5py.File(out, "r") as f:
        assert list(f.keys()) == [str(i) for i in range(len(SENTENCES))]  # input order
        for i, sentence in enumerate(SENTENCES):
            data = f[str(i)][...]
            assert data.dtype == np.float32
            layers = expected_layers[i]
            expected = {"all": layers, "top": layers[-1], "average": layers.mean(axis=0)}[mode]
            assert data.shape == expected.shape
            assert data.shape[-1] == 32 and data.shape[-2] == len(sentence)
            np.testing.assert_allclose(data, expected, atol=2e-6, rtol=1e-5)
    assert not list(tmp_path.glob("*.tmp"))


def test_jsonl_takes_any_token(tmp_path, reference_options, reference_weights, reference_bilm):
    sentences = [["", " ", "a b"], ["\t"], [], ["<S>", "plain"]]
    path = tmp_path / "tokens.jsonl"
    path.write_text("\n".join(json.dumps(s) for s in sentences) + "\n", encoding="utf8")
    out = tmp_path / "out.hdf5"
    assert _run(reference_options, reference_weights, path, out, "--top") == 0
    with h5py.File(out, "r") as f, torch.no_grad():
        for i, s in enumerate(sentences):
            assert f[str(i)].shape == (len(s), 32)
            if s:
                expected = reference_bilm(batch_to_ids([s])).layers[-1, 0].numpy()
                np.testing.assert_allclose(f[str(i)][...], expected, atol=2e-6, rtol=1e-5)


def test_txt_and_jsonl_agree(tmp_path, reference_options, reference_weights, txt_input):
    jsonl = tmp_path / "same.jsonl"
    jsonl.write_text("\n".join(json.dumps(s) for s in SENTENCES), encoding="utf8")
    assert _run(reference_options, reference_weights, txt_input, tmp_path / "a.hdf5") == 0
    assert _run(reference_options, reference_weights, jsonl, tmp_path / "b.hdf5") == 0
    with h5py.File(tmp_path / "a.hdf5") as a, h5py.File(tmp_path / "b.hdf5") as b:
        for key in a:
            assert np.array_equal(a[key][...], b[key][...])


@pytest.mark.parametrize(
    "content, message",
    [
        ('["ok"]\n{"not": "a list"}\n', "line 2: expected a JSON list of strings, got a JSON dict"),
        ('["ok"]\n["a", 3]\n', "line 2: expected a JSON list of strings, got a list holding int"),
        ('["ok"]\n["ok"]\n[unquoted]\n', "line 3: not valid JSON"),
        ('"just a string"\n', "line 1: expected a JSON list of strings, got a JSON str"),
    ],
)
def test_bad_jsonl_names_the_line(tmp_path, reference_options, reference_weights, capsys, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf8")
    out = tmp_path / "out.hdf5"
    assert _run(reference_options, reference_weights, path, out) == 1
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert not out.exists()


def test_bad_utf8_names_the_line(tmp_path, reference_options, reference_weights, capsys):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine line\nbad \xff byte\n")
    assert _run(reference_options, reference_weights, path, tmp_path / "o.hdf5") == 1
    assert "line 2: not valid UTF-8" in capsys.readouterr().err


def test_missing_input_and_weights(tmp_path, reference_options, reference_weights, txt_input, capsys):
    assert _run(reference_options, reference_weights, tmp_path / "none.txt", tmp_path / "o.hdf5") == 1
    assert "none.txt not found" in capsys.readouterr().err
    assert _run(reference_options, tmp_path / "w.hdf5", txt_input, tmp_path / "o.hdf5") == 1
    assert "w.hdf5 not found" in capsys.readouterr().err
    assert _run(reference_options, reference_weights, txt_input, tmp_path / "o.hdf5", "--batch-size", "0") == 1
    assert "--batch-size" in capsys.readouterr().err


def test_module_entry_point_and_progress_bar(tmp_path, reference_options, reference_weights, txt_input):
    out = tmp_path / "out.hdf5"
    proc = subprocess.run(
        [sys.executable, "-m", "spacy_elmo", "embed", str(reference_options), str(reference_weights), str(txt_input), str(out), "--average"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "6/6" in proc.stderr and "sent" in proc.stderr  # progress on stderr
    assert proc.stdout == ""
    with h5py.File(out) as f:
        assert f["0"].shape == (7, 32)


def test_token_cache_and_threads_give_the_same_file(tmp_path, reference_options, reference_weights, txt_input):
    plain, cached = tmp_path / "plain.hdf5", tmp_path / "cached.hdf5"
    assert _run(reference_options, reference_weights, txt_input, plain, "--token-cache-mb", "0", "--batch-size", "2") == 0
    threads = torch.get_num_threads()
    try:
        assert _run(reference_options, reference_weights, txt_input, cached, "--token-cache-mb", "8", "--batch-size", "2", "--threads", "1") == 0
    finally:
        torch.set_num_threads(threads)
    with h5py.File(plain, "r") as a, h5py.File(cached, "r") as b:
        for key in a:
            assert np.array_equal(a[key][...], b[key][...])


@pytest.mark.parametrize("flags, message", [(["--token-cache-mb", "-1"], "token_cache_mb"), (["--threads", "0"], "--threads")])
def test_bad_cache_and_thread_values(tmp_path, reference_options, reference_weights, txt_input, capsys, flags, message):
    assert _run(reference_options, reference_weights, txt_input, tmp_path / "o.hdf5", *flags) == 1
    assert message in capsys.readouterr().err


def test_precision_flag(tmp_path, reference_options, reference_weights, txt_input, capsys, monkeypatch):
    monkeypatch.setattr("spacy_elmo.bilm.precision.bf16_is_fast", lambda device: True)  # numbers, not speed
    exact, fast = tmp_path / "exact.hdf5", tmp_path / "fast.hdf5"
    assert _run(reference_options, reference_weights, txt_input, exact) == 0
    assert _run(reference_options, reference_weights, txt_input, fast, "--precision", "bf16") == 0
    with h5py.File(exact, "r") as a, h5py.File(fast, "r") as b:
        for key in a:
            np.testing.assert_allclose(a[key][...], b[key][...], atol=0.05)
    int8 = tmp_path / "int8.hdf5"
    assert _run(reference_options, reference_weights, txt_input, int8, "--precision", "int8") == 0
    with h5py.File(exact, "r") as a, h5py.File(int8, "r") as b:
        for key in a:
            if key != "sentence_to_index":
                np.testing.assert_allclose(a[key][...], b[key][...], atol=1.0)  # the fixture: max |diff| 0.53
        assert any(not np.array_equal(a[k][...], b[k][...]) for k in a if k != "sentence_to_index")
    assert _run(reference_options, reference_weights, txt_input, tmp_path / "x.hdf5", "--precision", "int4") == 1
    assert "Invalid precision 'int4'" in capsys.readouterr().err
    monkeypatch.setattr("spacy_elmo.bilm.precision.bf16_is_fast", lambda device: False)
    assert _run(reference_options, reference_weights, txt_input, tmp_path / "y.hdf5", "--precision", "bf16") == 1
    assert "needs native bfloat16" in capsys.readouterr().err


def test_one_source_argument_takes_any_layout(tmp_path, reference_options, reference_bilm, txt_input):
    """embed SOURCE INPUT OUTPUT: the folder of the bilm-tf pair, or an ELMoForManyLangs folder."""
    from ..bilm.efml_model import write_efml_model
    from spacy_elmo.bilm import load_efml

    assert main(["embed", str(reference_options.parent), str(txt_input), str(tmp_path / "a.hdf5"), "--quiet"]) == 0
    assert main(["embed", str(reference_options), str(reference_options.parent / "lm_weights.hdf5"), str(txt_input),
                 str(tmp_path / "b.hdf5"), "--quiet"]) == 0
    with h5py.File(tmp_path / "a.hdf5", "r") as a, h5py.File(tmp_path / "b.hdf5", "r") as b:
        assert sorted(a) == sorted(b) and all(np.array_equal(a[k][...], b[k][...]) for k in a)
    folder = write_efml_model(tmp_path / "efml")
    assert main(["embed", str(folder), str(txt_input), str(tmp_path / "c.hdf5"), "--quiet", "--top"]) == 0
    bilm = load_efml(folder)
    first = txt_input.read_text(encoding="utf8").splitlines()[0].split()
    with h5py.File(tmp_path / "c.hdf5", "r") as c, torch.no_grad():
        expected = bilm(bilm.batch_to_ids([first])).layers[-1, 0].numpy()
        np.testing.assert_allclose(c["0"][...], expected, atol=1e-6)
