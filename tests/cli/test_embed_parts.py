"""`embed --parts` and `torchrun ... embed`: resumable, sharded, same file as one process."""
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from spacy_elmo.bilm import load_bilm
from spacy_elmo.cli import embed, main
from spacy_elmo.distributed import Distributed

WORDS = "the cat sat on a mat while dogs barked at 東京 and 🙂 in the rain".split()


@pytest.fixture
def many(tmp_path):
    """150 sentences of 0-16 tokens: 75 batches of 2, five part files of 16 batches."""
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=int(rng.integers(0, 17)))) for _ in range(150)]
    path = tmp_path / "many.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def _read(path):
    with h5py.File(path, "r") as f:
        return list(f.keys()), {k: f[k][...] for k in f.keys()}


def _embed(reference_options, reference_weights, inp, out, *flags):
    return main(["embed", str(reference_options), str(reference_weights), str(inp), str(out), "--quiet", "--batch-size", "2", *flags])


def test_parts_give_the_same_file(tmp_path, reference_options, reference_weights, many):
    plain, parts = tmp_path / "plain.h5", tmp_path / "parts.h5"
    assert _embed(reference_options, reference_weights, many, plain) == 0
    assert _embed(reference_options, reference_weights, many, parts, "--parts") == 0
    keys_a, a = _read(plain)
    keys_b, b = _read(parts)
    assert keys_a == keys_b == [str(i) for i in range(150)]
    for key in keys_a:
        assert a[key].shape == b[key].shape and np.array_equal(a[key], b[key]), key
    assert not embed.parts_folder(parts).exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_a_killed_run_continues_without_recomputing(tmp_path, reference_options, reference_weights, many, monkeypatch):
    sentences = embed.read_sentences(many)
    model = load_bilm(reference_options, reference_weights)
    out = tmp_path / "out.h5"
    real = embed._embed_batch
    calls = {"n": 0}

    def dies_in_the_third_part(model, batch, mode):
        calls["n"] += 1
        if calls["n"] > 2 * embed.PART_BATCHES + 3:
            raise KeyboardInterrupt
        return real(model, batch, mode)

    monkeypatch.setattr(embed, "_embed_batch", dies_in_the_third_part)
    with pytest.raises(KeyboardInterrupt):
        embed.embed_in_parts(model, sentences, out, batch_size=2, run_id="r1", progress=False)
    folder = embed.parts_folder(out)
    assert sorted(p.name for p in folder.iterdir()) == ["0.h5", "1.h5", "manifest.json"]  # the broken part left nothing
    assert not out.exists()
    monkeypatch.setattr(embed, "_embed_batch", real)
    assert embed.embed_in_parts(model, sentences, out, batch_size=2, run_id="r1", progress=False) == 3  # of 5 parts
    expected = tmp_path / "expected.h5"
    embed.embed_sentences(model, sentences, expected, batch_size=2, progress=False)
    _, a = _read(expected)
    _, b = _read(out)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_parts_of_another_run_are_refused(tmp_path, reference_options, reference_weights, many, capsys):
    out = tmp_path / "out.h5"
    folder = embed.parts_folder(out)
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"run_id": "something else"}))
    assert _embed(reference_options, reference_weights, many, out, "--parts") == 1
    err = capsys.readouterr().err
    assert "parts of another embed run" in err and str(folder) in err


def test_two_processes_write_the_same_file(tmp_path, reference_options, reference_weights, many):
    single, double = tmp_path / "single.h5", tmp_path / "double.h5"
    assert _embed(reference_options, reference_weights, many, single, "--threads", "1") == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "spacy_elmo"]
    cmd = ["embed", str(reference_options), str(reference_weights), str(many), str(double), "--quiet", "--batch-size", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(torchrun + cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    keys_a, a = _read(single)
    keys_b, b = _read(double)
    assert keys_a == keys_b
    for key in keys_a:
        assert np.array_equal(a[key], b[key]), key
    assert not embed.parts_folder(double).exists()


def test_output_must_not_be_an_input(tmp_path, reference_options, reference_weights, many, capsys):
    before = many.read_bytes()
    assert _embed(reference_options, reference_weights, many, many) == 1
    assert "also the input file" in capsys.readouterr().err
    assert many.read_bytes() == before


def test_unusable_device_is_a_clear_error(tmp_path, reference_options, reference_weights, many, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert _embed(reference_options, reference_weights, many, tmp_path / "o.h5", "--device", "cuda:0") == 1
    assert "torch sees no CUDA GPU" in capsys.readouterr().err


def test_sigterm_leaves_no_partial_file(tmp_path, reference_options, reference_weights):
    big = tmp_path / "big.txt"
    big.write_text("\n".join(" ".join(WORDS) for _ in range(20000)) + "\n", encoding="utf8")
    out = tmp_path / "out.h5"
    cmd = [sys.executable, "-m", "spacy_elmo", "embed", str(reference_options), str(reference_weights), str(big), str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".out.h5.*.tmp")):
        time.sleep(0.2)
    assert list(tmp_path.glob(".out.h5.*.tmp")), "embed did not start writing"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_single_process_distributed_is_a_no_op():
    dist = Distributed("cpu")
    assert dist.world_size == 1 and dist.is_main
    dist.barrier()
    dist.close()
