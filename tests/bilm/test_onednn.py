"""oneDNN products on packed weights (the float32 inference fast path) against the default BLAS path."""
import copy
import sys
from pathlib import Path

import pytest
import torch

from spacy_elmo.bilm import BiLM, batch_to_ids
from spacy_elmo.bilm.precision import ONEDNN, use_onednn

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
    assert use_onednn() is onednn
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


def _stacked_loop_layers(bilm, sentences, monkeypatch):
    """The outputs of the stacked loop (both directions in one batched product), bypassing the direct one."""
    from spacy_elmo.bilm import lstm

    with monkeypatch.context() as patch:
        patch.setattr(lstm, "layer_products", lambda *args: None)
        with torch.inference_mode():
            out = bilm(batch_to_ids(sentences), return_state=True)
    return out.layers, out.state


def test_int8_direct_loop_is_the_stacked_loop_bit_for_bit(small_bilm, sentences, monkeypatch):
    """int8: one packed product per direction gives what the stacked products gave, to the bit."""
    from spacy_elmo.bilm.precision import apply_precision, int8_engine

    if not int8_engine():
        pytest.skip("this torch has no quantized CPU kernels")
    bilm = apply_precision(copy.deepcopy(small_bilm), "int8")
    stacked, stacked_state = _stacked_loop_layers(bilm, sentences, monkeypatch)
    with torch.inference_mode():
        direct = bilm(batch_to_ids(sentences), return_state=True)
    assert torch.equal(direct.layers, stacked)
    assert torch.equal(direct.state.h, stacked_state.h) and torch.equal(direct.state.c, stacked_state.c)


def test_bf16_onednn_loop_matches_the_stacked_loop(small_bilm, sentences, monkeypatch):
    """bf16 through oneDNN's packed products against torch's batched bf16 products: the same
    bf16 rounding of the products (float32 accumulation in both), so they differ by a few bf16 ulps."""
    from spacy_elmo.bilm.precision import apply_precision, bf16_is_fast

    if not bf16_is_fast(torch.device("cpu")):
        pytest.skip("this CPU has no native bfloat16 products")
    monkeypatch.setenv("SPACY_ELMO_ONEDNN", "1")
    bilm = apply_precision(copy.deepcopy(small_bilm), "bf16")
    stacked, _ = _stacked_loop_layers(bilm, sentences, monkeypatch)
    with torch.inference_mode():
        direct = bilm(batch_to_ids(sentences)).layers
    assert any(hasattr(p, ONEDNN) for p in bilm.lstm.parameters())
    scale = stacked.abs().max().item()
    assert (direct - stacked).abs().max().item() < 0.02 * scale
    cosine = torch.nn.functional.cosine_similarity(direct.flatten(1), stacked.flatten(1), dim=1)
    assert cosine.min().item() > 0.9999


def test_int8_onednn_packing_gives_fbgemms_products_within_float_rounding(monkeypatch):
    """The LSTM's input weights are packed for oneDNN's int8 kernels where use_onednn() is on:
    the same quantization as torch's default engine, so each product agrees to float32 rounding."""
    from spacy_elmo.bilm.precision import _pack, int8_engine

    if not int8_engine() or "onednn" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch has no oneDNN int8 kernels")
    torch.manual_seed(0)
    w, x = torch.randn(64, 256), torch.randn(9, 64)
    monkeypatch.setenv("SPACY_ELMO_ONEDNN", "1")
    engine = torch.backends.quantized.engine
    onednn = torch.ops.quantized.linear_dynamic(x, _pack(w, "lstm.layers.0.w_input")[0])
    assert torch.backends.quantized.engine == engine  # the global setting is left as it was
    monkeypatch.setenv("SPACY_ELMO_ONEDNN", "0")
    default = torch.ops.quantized.linear_dynamic(x, _pack(w, "lstm.layers.0.w_input")[0])
    torch.testing.assert_close(onednn, default, atol=1e-5 * default.abs().max().item(), rtol=0)
    assert (onednn - x @ w).abs().max() < 0.02 * (x @ w).abs().max()  # and both are int8 products of x @ w


def test_int8_steps_with_many_rows_run_onednns_recurrent_kernels_within_float_rounding(small_bilm, sentences, monkeypatch):
    """Steps of at least ONEDNN_INT8_MIN_ROWS live rows run the recurrent product on oneDNN's int8
    kernels (faster there), fewer rows on fbgemm's: the same int8 weights, so the layers agree with the
    stacked loop (fbgemm's at every step) to float32 rounding, and equal it bit for bit when no step
    reaches the bound. (The cell state shows the difference; the outputs mostly do not, as the
    projection quantizes its input to 8 bits again: the int8 projections, as on CPUs without native
    bf16; bf16 ones round the difference to bf16 steps instead.)"""
    from spacy_elmo.bilm import precision
    from spacy_elmo.bilm.precision import INT8_MANY_ROWS, apply_precision, int8_engine

    if not int8_engine() or "onednn" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch has no oneDNN int8 kernels")
    monkeypatch.setenv("SPACY_ELMO_ONEDNN", "1")
    monkeypatch.setattr(precision, "int8_bf16_applies", lambda: False)
    many = (sentences * 100)[:100]  # 100 live rows in the first steps
    bilm = apply_precision(copy.deepcopy(small_bilm), "int8")
    assert all(hasattr(layer.w_hidden, INT8_MANY_ROWS) for layer in bilm.lstm.layers)
    assert not hasattr(bilm.lstm.layers[0].w_proj, INT8_MANY_ROWS)
    stacked, stacked_state = _stacked_loop_layers(bilm, many, monkeypatch)
    with torch.inference_mode():
        split = bilm(batch_to_ids(many), return_state=True)
        monkeypatch.setattr(precision, "ONEDNN_INT8_MIN_ROWS", 10**9)
        fbgemm_only = bilm(batch_to_ids(many), return_state=True)
    assert torch.equal(fbgemm_only.layers, stacked) and torch.equal(fbgemm_only.state.c, stacked_state.c)
    assert not torch.equal(split.state.c, stacked_state.c)  # the oneDNN kernels did run
    scale = stacked.abs().max().item()
    torch.testing.assert_close(split.layers, stacked, atol=1e-5 * scale, rtol=0)
    torch.testing.assert_close(split.state.c, stacked_state.c, atol=1e-5 * stacked_state.c.abs().max().item(), rtol=0)
