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


@pytest.fixture
def exact_cuda_matmuls():
    """Plain float32 products on CUDA (no TF32), so CUDA can be held to float32 rounding."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@needs_cuda
def test_bilm_on_cuda_reproduces_bilm_tf(exact_cuda_matmuls, reference_options, reference_weights, reference_sentences, reference_dir):
    """The bilm-tf fixture outputs on CUDA (stateful protocol, as tests/bilm/test_parity.py on CPU)."""
    from spacy_elmo.bilm import load_bilm

    from .bilm.test_parity import _expected_top

    bilm = load_bilm(reference_options, reference_weights).to("cuda")
    state = None
    worst = 0.0
    with torch.inference_mode():
        for i in range(10):
            batch = [reference_sentences[k][i].split() for k in range(3)]
            out = bilm(batch_to_ids(batch).to("cuda"), state, return_state=True)
            state = out.state
            for k in range(3):
                n = len(batch[k])
                actual = out.layers[2, k, :n].cpu().numpy()
                np.testing.assert_allclose(actual, _expected_top(reference_dir, k, i), atol=1e-5, rtol=1e-4)
                worst = max(worst, float(np.abs(actual - _expected_top(reference_dir, k, i)).max()))
    print(f"bilm-tf fixture on CUDA: max |diff| {worst:.2e}")


@needs_cuda
@pytest.mark.parametrize("chunk_rows", [1 << 20, 20, 1])
def test_the_inference_loop_on_cuda_matches_the_plain_cell(exact_cuda_matmuls, monkeypatch, chunk_rows):
    """`_run_layer_inference` on CUDA (chunked input products, in-place state) against the op-for-op `_cell` loop."""
    from spacy_elmo.bilm import lstm

    from .bilm.test_lstm import inference_and_plain_loops

    monkeypatch.setattr(lstm, "INPUT_CHUNK_ROWS", chunk_rows)
    fast, plain = inference_and_plain_loops(monkeypatch, "cuda")
    torch.testing.assert_close(fast.layers, plain.layers, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.state.h, plain.state.h, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.state.c, plain.state.c, atol=1e-5, rtol=1e-5)


@needs_cuda
def test_the_written_out_backward_on_cuda_matches_autograd(exact_cuda_matmuls, monkeypatch):
    """`_Recurrence` (the fused step loop's backward) on CUDA against autograd through every step."""
    from .bilm.test_lstm import SENTENCES as LSTM_SENTENCES
    from .bilm.test_lstm import _bilm, _gradients

    bilm = _bilm().to("cuda")
    ids = batch_to_ids(LSTM_SENTENCES).to("cuda")
    torch.manual_seed(2)
    zero = bilm.lstm.zero_state(len(LSTM_SENTENCES), ids.new_zeros(1, dtype=torch.float32))
    state = type(zero)(torch.randn_like(zero.h) * 0.3, torch.randn_like(zero.c) * 0.3)
    fused, fused_grads, fused_h0, fused_c0 = _gradients(bilm, ids, state, True, monkeypatch)
    plain, plain_grads, plain_h0, plain_c0 = _gradients(bilm, ids, state, False, monkeypatch)
    torch.testing.assert_close(fused.layers, plain.layers, atol=1e-6, rtol=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(fused_h0, plain_h0, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused_c0, plain_c0, atol=1e-5, rtol=1e-4)


@needs_cuda
def test_bf16_inference_loop_on_cuda_matches_the_plain_cell(monkeypatch):
    """bf16 products through the shared inference loop on CUDA against the op-for-op loop with the same products."""
    from spacy_elmo.bilm import lstm

    from .bilm.test_lstm import SENTENCES as LSTM_SENTENCES
    from .bilm.test_lstm import _bilm

    bilm = _bilm().to("cuda").set_precision("bf16")
    ids = batch_to_ids(LSTM_SENTENCES * 3).to("cuda")
    with torch.no_grad():
        fast = bilm(ids, return_state=True)
        with monkeypatch.context() as patch:
            patch.setattr(lstm, "_fast_inference_applies", lambda x: False)
            plain = bilm(ids, return_state=True)
    torch.testing.assert_close(fast.layers.float(), plain.layers.float(), atol=2e-2, rtol=2e-2)


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
