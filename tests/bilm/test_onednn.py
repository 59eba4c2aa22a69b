"""oneDNN products on packed weights (the float32 inference fast path) against the default BLAS path."""
import copy
import sys
from pathlib import Path

import pytest
import torch

from spacy_elmo.bilm import BiLM, batch_to_ids
from spacy_elmo.bilm.precision import ONEDNN, onednn_fp32

ROUNDING = dict(atol=1e-6, rtol=1e-5)

pytestmark = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")),
    reason="this torch has no oneDNN linear kernels",
)


@pytest.fixture(scope="module")
def sentences(reference_sentences):
    return [s.split() for group in reference_sentences for s in group]


def _layers(bilm, sentences, onednn, monkeypatch):
    monkeypatch.setenv("SPACY_ELMO_ONEDNN", "1" if onednn else "0")
    assert onednn_fp32() is onednn
    with torch.inference_mode():
        out = bilm(batch_to_ids(sentences), return_state=True)
    return out.layers, out.state


@pytest.fixture(scope="module")
def small_bilm():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_bilm import make_config

    torch.manual_seed(0)
    return BiLM(make_config("small")).eval()


@pytest.mark.parametrize("which", ["fixture", "small"])
def test_onednn_matches_the_default_path(reference_bilm, small_bilm, sentences, monkeypatch, which):
    bilm = reference_bilm if which == "fixture" else small_bilm
    plain, plain_state = _layers(bilm, sentences, False, monkeypatch)
    fast, fast_state = _layers(bilm, sentences, True, monkeypatch)
    torch.testing.assert_close(fast, plain, **ROUNDING)
    torch.testing.assert_close(fast_state.h, plain_state.h, **ROUNDING)
    torch.testing.assert_close(fast_state.c, plain_state.c, **ROUNDING)
    assert any(hasattr(p, ONEDNN) for p in bilm.lstm.parameters())  # the packed weights were used


def test_onednn_token_cache_stays_bit_identical(reference_bilm, sentences, monkeypatch):
    """Cached token vectors equal recomputed ones in any batch: the blocked products keep one shape."""
    bilm = copy.deepcopy(reference_bilm)
    monkeypatch.setenv("SPACY_ELMO_ONEDNN", "1")
    with torch.inference_mode():
        alone = [bilm(batch_to_ids([s])).layers[:, 0, : len(s)] for s in sentences[:6]]
        bilm.set_token_cache(4)
        together = bilm(batch_to_ids(sentences[:6])).layers
        again = bilm(batch_to_ids(sentences[:6])).layers
    assert torch.equal(together, again)
    for i, s in enumerate(sentences[:6]):
        torch.testing.assert_close(together[:, i, : len(s)], alone[i], **ROUNDING)


def test_onednn_packs_again_after_the_weights_change(reference_bilm, sentences, monkeypatch):
    bilm = copy.deepcopy(reference_bilm)
    _layers(bilm, sentences, True, monkeypatch)
    with torch.no_grad():
        for layer in bilm.lstm.layers:
            layer.w_hidden.mul_(0.5)  # in place: the packed copy is stale
        bilm.token_encoder.highways[0].w_carry.data = bilm.token_encoder.highways[0].w_carry.data * 0.5  # new storage
    fast, _ = _layers(bilm, sentences, True, monkeypatch)
    plain, _ = _layers(bilm, sentences, False, monkeypatch)
    torch.testing.assert_close(fast, plain, **ROUNDING)


def test_training_does_not_take_the_onednn_path(reference_bilm, sentences, monkeypatch):
    """With autograd the products stay torch's (oneDNN's packed products have no backward)."""
    bilm = copy.deepcopy(reference_bilm).train()
    bilm.requires_grad_(True)
    monkeypatch.setenv("SPACY_ELMO_ONEDNN", "1")
    out = bilm(batch_to_ids(sentences[:4])).layers
    out.sum().backward()
    assert all(p.grad is not None for p in bilm.lstm.parameters() if p.requires_grad)
    assert not any(hasattr(p, ONEDNN) for p in bilm.parameters())
