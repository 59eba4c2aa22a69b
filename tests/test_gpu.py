"""GPU checks (``pytest -m gpu``; ``benchmarks/gpu_check.sh`` runs them with the GPU benchmark).

Each skips, saying why, on a machine without a CUDA GPU (or, for the spaCy
pipeline on GPU, without CuPy); everything else in the suite runs on CPU.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from spacy_elmo.bilm import batch_to_ids

from .conftest import ROOT

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
SENTENCES = [["The", "cat", "sat", "on", "the", "mat", "."], ["Hello", "!"], ["東京", "🙂"]]


@needs_cuda
def test_bilm_on_cuda_matches_cpu(reference_bilm):
    ids = batch_to_ids(SENTENCES)
    with torch.inference_mode():
        cpu = reference_bilm(ids).layers
        gpu_model = reference_bilm.to("cuda")
        try:
            gpu = gpu_model(ids.to("cuda")).layers.cpu()
        finally:
            reference_bilm.to("cpu")
    # TF32 may be on for CUDA matmuls: agreement to ~1e-3, not float32 rounding
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), atol=2e-3, rtol=1e-3)


@needs_cuda
def test_bf16_on_cuda_is_close(reference_options, reference_weights):
    from spacy_elmo.bilm import load_bilm

    exact = load_bilm(reference_options, reference_weights).to("cuda")
    fast = load_bilm(reference_options, reference_weights).to("cuda").set_precision("bf16")
    ids = batch_to_ids(SENTENCES).to("cuda")
    with torch.inference_mode():
        a, b = exact(ids).layers.float(), fast(ids).layers.float()
    assert float((a - b).abs().max()) < 0.1 * float(a.abs().max())


@needs_cuda
def test_embed_on_cuda(tmp_path, reference_options, reference_weights):
    from spacy_elmo.cli import main

    inp = tmp_path / "s.txt"
    inp.write_text("\n".join(" ".join(s) for s in SENTENCES) + "\n", encoding="utf8")
    for device in ("cpu", "cuda:0"):
        assert main(["embed", str(reference_options), str(reference_weights), str(inp), str(tmp_path / f"{device}.h5"), "--quiet", "--device", device]) == 0
    import h5py

    with h5py.File(tmp_path / "cpu.h5") as a, h5py.File(tmp_path / "cuda:0.h5") as b:
        for key in a:
            np.testing.assert_allclose(a[key][...], b[key][...], atol=2e-3, rtol=1e-3)


@needs_cuda
def test_pretraining_steps_on_cuda(tmp_path):
    from spacy_elmo.cli import main

    lines = [" ".join(["the", "cat", "sees", "a", "dog", "."][: 3 + i % 4]) for i in range(200)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    args = ["pretrain", str(ROOT / "configs" / "pretrain_tiny.cfg"), str(tmp_path / "run"), "--quiet", "--device", "cuda",
            "--paths.train", str(tmp_path / "train.txt"), "--training.max_steps", "5", "--training.eval_every", "5"]
    assert main(args) == 0
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 5 and np.isfinite(metrics[-1]["loss"])


@needs_cuda
def test_spacy_train_on_gpu(tmp_path, reference_dir):
    pytest.importorskip("cupy", reason="spaCy on GPU needs CuPy (pip install cupy-cuda12x)")
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    words = "The cat sat on the mat .".split()
    doc = nlp.make_doc(" ".join(words))
    for token, tag in zip(doc, ["D", "N", "V", "P", "D", "N", "."]):
        token.tag_ = tag
    DocBin(docs=[doc] * 20).to_disk(tmp_path / "train.spacy")
    cmd = [sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / "tagger_parser.cfg"), "--gpu-id", "0",
           "--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "train.spacy"),
           "--paths.elmo", str(reference_dir), "--training.max_steps", "4", "--training.eval_frequency", "2",
           "--components.parser.min_action_freq", "1", "--output", str(tmp_path / "out")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
