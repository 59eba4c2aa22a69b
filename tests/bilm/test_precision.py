"""The bf16 and int8 fast paths against the exact fp32 path on the bilm-tf fixture."""
import copy

import pytest
import torch

from spacy_elmo.bilm import batch_to_ids
from spacy_elmo.bilm.precision import check_precision


@pytest.fixture(scope="module")
def sentences(reference_sentences):
    return [s.split() for group in reference_sentences for s in group]


def _layers(bilm, sentences):
    with torch.inference_mode():
        return bilm(batch_to_ids(sentences)).layers


def _weight_bytes(module):
    return sum(p.numel() * p.element_size() for p in module.parameters())


def test_bf16_stays_close_to_fp32_and_halves_the_weights(reference_bilm, sentences):
    exact = _layers(reference_bilm, sentences)
    fast = copy.deepcopy(reference_bilm).set_precision("bf16", check_device=False)
    assert fast.precision == "bf16" and reference_bilm.precision == "fp32"
    got = _layers(fast, sentences)
    assert got.dtype == torch.float32
    mask = (batch_to_ids(sentences) > 0).any(-1)
    a, b = exact[:, mask], got[:, mask]
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    # measured: max |diff| 0.015, mean cosine 0.999996, min 0.99992
    assert (a - b).abs().max() < 0.05
    assert cosine.mean() > 0.9999 and cosine.min() > 0.999
    assert _weight_bytes(fast) < 0.55 * _weight_bytes(reference_bilm)


def test_bf16_lays_the_lstm_weights_out_column_major_and_fp32_row_major_again(reference_bilm, sentences):
    """Same shapes and values; only the memory layout changes (bf16 products ran faster with the weight transposed)."""
    from spacy_elmo.bilm.precision import int8_weights

    bilm = copy.deepcopy(reference_bilm)
    before = {name: p.detach().clone() for name, p in bilm.named_parameters()}
    bilm.set_precision("bf16", check_device=False)
    lstm = int8_weights(bilm)
    assert lstm and all(not p.is_contiguous() and p.transpose(-1, -2).is_contiguous() for p in lstm)
    for name, p in bilm.named_parameters():
        assert p.shape == before[name].shape
        expected = before[name].bfloat16() if p.dtype == torch.bfloat16 else before[name]
        assert torch.equal(p.detach(), expected), name
    bilm.set_precision("fp32")
    assert all(p.is_contiguous() for p in bilm.parameters())
    assert torch.equal(bilm.lstm.layers[0].w_hidden.detach(), before["lstm.layers.0.w_hidden"].bfloat16().float())


def test_default_is_the_exact_path(reference_bilm, sentences):
    again = copy.deepcopy(reference_bilm).set_precision("fp32")
    assert torch.equal(_layers(again, sentences), _layers(reference_bilm, sentences))


def test_token_cache_is_exact_in_bf16_too(reference_bilm, sentences):
    fast = copy.deepcopy(reference_bilm).set_precision("bf16", check_device=False)
    plain = _layers(fast, sentences[:5])
    fast.set_token_cache(4)
    for _ in range(2):
        assert torch.equal(_layers(fast, sentences[:5]), plain)


def test_changing_precision_empties_the_token_cache(reference_bilm, sentences):
    bilm = copy.deepcopy(reference_bilm)
    cache = bilm.set_token_cache(4)
    _layers(bilm, sentences[:3])
    assert len(cache)
    bilm.set_precision("bf16", check_device=False)
    assert len(cache) == 0


def test_bf16_on_a_device_without_native_bf16_is_a_clear_error(reference_bilm, monkeypatch):
    # as on a CPU without AVX512-BF16/AMX (this test's machine may have them)
    monkeypatch.setattr("spacy_elmo.bilm.precision.bf16_is_fast", lambda device: False)
    with pytest.raises(ValueError, match="precision 'bf16' needs native bfloat16.*Use precision = 'fp32'"):
        copy.deepcopy(reference_bilm).set_precision("bf16")


@pytest.mark.parametrize("value", ["int4", "fp16", "FP32", None])
def test_unknown_precision_names_the_choices(value):
    with pytest.raises(ValueError, match="Invalid precision.*'fp32', 'bf16', 'int8'"):
        check_precision(value)


def _deviation(exact, got, sentences):
    mask = (batch_to_ids(sentences) > 0).any(-1)
    a, b = exact[:, mask], got[:, mask]
    return (a - b).abs().max().item(), torch.nn.functional.cosine_similarity(a, b, dim=-1)


def test_int8_stays_close_to_fp32_and_fp32_is_exact_again(reference_bilm, sentences):
    exact = _layers(reference_bilm, sentences)
    bilm = copy.deepcopy(reference_bilm).set_precision("int8")
    assert bilm.precision == "int8"
    got = _layers(bilm, sentences)
    assert got.dtype == torch.float32
    worst, cosine = _deviation(exact, got, sentences)
    # measured on this 16-dim toy (int8 is coarsest on tiny inner dimensions): max |diff| 0.53, mean cosine 0.9987
    assert cosine.mean() > 0.995 and worst < 1.0
    assert not torch.equal(got, exact)  # the products really ran in int8
    assert torch.equal(_layers(bilm.set_precision("fp32"), sentences), exact)


def _mean_layer_error(exact, got):
    """Mean |diff| per LSTM layer at the tokens."""
    return (got.layers - exact.layers).abs()[1:, exact.mask].mean(dim=(1, 2))


def test_int8_row_scaling_and_bf16_projections_bring_it_closer_to_fp32(reference_bilm, sentences, monkeypatch):
    """Each of the two departures from plain dynamic int8 products (input rows scaled to their own
    maximum; projections in bf16 where the CPU has native bf16) moves the layers towards fp32.
    Measured on the fixture, mean |diff| of LSTM layers 1 / 2: plain 0.0046 / 0.0051, rows scaled
    0.0032 / 0.0036, bf16 projections 0.0039 / 0.0042, both 0.0019 / 0.0023."""
    from spacy_elmo.bilm import precision

    def error():
        bilm = copy.deepcopy(reference_bilm).set_precision("int8")
        with torch.inference_mode():
            return _mean_layer_error(reference_bilm(ids), bilm(ids))

    ids = batch_to_ids(sentences)
    bf16 = precision.int8_bf16_applies()
    both = error()
    monkeypatch.setattr(precision, "int8_bf16_applies", lambda: False)
    rows_only = error()
    monkeypatch.setattr(precision, "INT8_ROW_SCALED_WEIGHTS", ())
    plain = error()
    assert (rows_only < 0.8 * plain).all()
    if bf16:
        assert (both < 0.7 * rows_only).all()
        monkeypatch.setattr(precision, "int8_bf16_applies", lambda: True)
        assert (error() < 0.9 * plain).all()  # bf16 projections alone
    else:
        assert torch.equal(both, rows_only)


def test_int8_products_of_each_lstm_weight(reference_bilm, monkeypatch):
    """int8_linear: the input weights scale each row of their input to its own maximum (rows of
    very different sizes keep their precision), the recurrent ones run plain dynamic int8
    products, the projections run on their bf16 values where the CPU has native bf16."""
    from spacy_elmo.bilm import precision as P

    layer = copy.deepcopy(reference_bilm).set_precision("int8").lstm.layers[0]
    linear = torch.ops.quantized.linear_dynamic
    torch.manual_seed(0)
    x = torch.randn(6, layer.w_input.shape[1]) * torch.tensor([1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0])[:, None]
    scale = x.abs().amax(dim=1, keepdim=True)
    got = P.int8_linear(x, layer.w_input, 1)
    assert torch.equal(got, linear(x / scale, getattr(layer.w_input, P.INT8)[1]) * scale)
    exact = x @ layer.w_input[1].detach()

    def row_error(y):
        return (y - exact).abs().amax(dim=1) / exact.abs().amax(dim=1)

    plain = linear(x, getattr(layer.w_input, P.INT8)[1])
    assert row_error(got).max() < 0.05 and row_error(plain)[0] > 0.5  # one scale for all rows loses the small ones
    h = torch.randn(3, layer.w_hidden.shape[1])
    assert not hasattr(layer.w_hidden, P.INT8_ROW_SCALED)
    assert torch.equal(P.int8_linear(h, layer.w_hidden, 0), linear(h, getattr(layer.w_hidden, P.INT8)[0]))

    values = getattr(layer.w_proj, P.INT8_BF16)  # kept on any CPU, run where native
    assert values.dtype == torch.bfloat16 and torch.equal(values, layer.w_proj.detach().to(torch.bfloat16))
    m = torch.rand(5, layer.w_proj.shape[1]) * 2 - 1
    int8 = linear(m, getattr(layer.w_proj, P.INT8)[0])
    got = P.int8_linear(m, layer.w_proj, 0)
    if P.int8_bf16_applies():
        exact = m @ layer.w_proj[0].detach()
        bf16 = m.to(torch.bfloat16).float() @ values[0].float()
        torch.testing.assert_close(got, bf16, atol=0.01 * bf16.abs().max().item(), rtol=0)  # bf16 output rounding apart
        assert (got - exact).abs().mean() < (int8 - exact).abs().mean()
    else:
        assert torch.equal(got, int8)
    monkeypatch.setattr(P, "int8_bf16_applies", lambda: False)
    assert torch.equal(P.int8_linear(m, layer.w_proj, 0), int8)


def test_int8_values_saved_before_bf16_projections_still_load(reference_bilm, sentences, monkeypatch):
    """Pipelines quantized before the projections had bf16 values carry only their int8 values:
    they load, and run their projections in int8 as they did. A bf16 entry of the wrong shape is
    a clear error."""
    from spacy_elmo.bilm import precision as P

    bilm = copy.deepcopy(reference_bilm).set_precision("int8")
    state = P.int8_state(bilm)
    assert {k for k in state if k.endswith(".bf16")} == {f"lstm.layers.{i}.w_proj.bf16" for i in range(2)}
    old = copy.deepcopy(reference_bilm)
    P.load_int8_state(old, {k: v for k, v in state.items() if not k.endswith(".bf16")})
    assert old.precision == "int8" and not any(hasattr(p, P.INT8_BF16) for p in old.parameters())
    monkeypatch.setattr(P, "int8_bf16_applies", lambda: False)
    assert torch.equal(_layers(old, sentences), _layers(bilm, sentences))
    bad = dict(state, **{"lstm.layers.0.w_proj.bf16": state["lstm.layers.0.w_proj.bf16"][:, :3]})
    with pytest.raises(ValueError, match="bf16 weights of lstm.layers.0.w_proj: shape"):
        P.load_int8_state(copy.deepcopy(reference_bilm), bad)


def test_int8_follows_new_weights_and_keeps_the_token_cache_exact(reference_bilm, sentences):
    bilm = copy.deepcopy(reference_bilm).set_precision("int8")
    other = copy.deepcopy(reference_bilm)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.9)
    bilm.load_state_dict(other.state_dict())
    assert bilm.precision == "int8"
    assert torch.equal(_layers(bilm, sentences[:5]), _layers(other.set_precision("int8"), sentences[:5]))
    plain = _layers(bilm, sentences[:5])
    bilm.set_token_cache(4)
    for _ in range(2):
        assert torch.equal(_layers(bilm, sentences[:5]), plain)


def test_int8_without_float_weights_runs_the_same_in_a_quarter_of_the_lstm_memory(reference_bilm, sentences):
    kept = copy.deepcopy(reference_bilm).set_precision("int8")
    freed = copy.deepcopy(reference_bilm).set_precision("int8", keep_float=False)
    assert freed.precision == "int8"
    assert torch.equal(_layers(freed, sentences), _layers(kept, sentences))
    from spacy_elmo.bilm.precision import INT8, int8_weights

    matrices = int8_weights(freed)  # the LSTM's w_input, w_hidden, w_proj
    assert matrices and all(p.numel() == 0 for p in matrices)  # their float32 values are freed
    int8_bytes = sum(torch.ops.quantized.linear_unpack(q)[0].numel() for p in matrices for q in getattr(p, INT8))
    float_bytes = sum(p.numel() * p.element_size() for p in int8_weights(kept))
    assert int8_bytes * 4 == float_bytes  # one byte per weight: a quarter of the float32 bytes
    assert _weight_bytes(freed.token_encoder) == _weight_bytes(kept.token_encoder)
    assert freed.set_precision("int8", keep_float=False) is freed  # already so: nothing to do


@pytest.mark.parametrize(
    "action, match",
    [
        (lambda b: b.state_dict(), "save it"),
        (lambda b: b.to(torch.float64), "move or convert it"),
        (lambda b: b.set_precision("fp32"), "set it to 'fp32'"),
        (lambda b: b.set_precision("int8"), "keeping float32 weights"),
        (lambda b: b.load_state_dict({}), "load weights into it"),
    ],
)
def test_int8_without_float_weights_refuses_what_needs_them(reference_bilm, action, match):
    freed = copy.deepcopy(reference_bilm).set_precision("int8", keep_float=False)
    with pytest.raises(ValueError, match=f"Cannot .*{match}.*keep_float=False.*Load the biLM again"):
        action(freed)


def test_int8_off_the_cpu_is_a_clear_error():
    from spacy_elmo.bilm.precision import check_device

    with pytest.raises(ValueError, match="precision 'int8'.*CPU only, not on cuda.*'bf16'"):
        check_device("int8", torch.device("cuda"))


def test_component_in_int8_saves_the_exact_weights(tmp_path, reference_source):
    import numpy as np
    import spacy

    texts = ["The cat sat on the mat .", "Dogs bark ."]
    exact = spacy.blank("en")
    exact.add_pipe("elmo", config={"source": reference_source})
    exact.initialize()
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source, "model": {"precision": "int8"}})
    nlp.initialize()
    for text in texts:
        a, b = exact(text).tensor, nlp(text).tensor
        assert not np.array_equal(a, b)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cos.mean() > 0.99
    nlp.to_disk(tmp_path / "int8")
    back = spacy.load(tmp_path / "int8", config={"components": {"elmo": {"model": {"precision": "fp32"}}}})
    for text in texts:  # the saved weights are the float32 ones: the exact path again
        np.testing.assert_array_equal(back(text).tensor, exact(text).tensor)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")  # torch pickling its packed int8 weights
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("keep_float", [True, False])
def test_a_copied_int8_bilm_runs_the_same_products(reference_bilm, sentences, keep_float, how):
    """``Parameter.__deepcopy__`` drops a parameter's attributes, so a plain deep copy lost the packed
    int8 weights (and ran fp32, or nothing at all with the float32 weights freed); unpickled packs
    are packed for the default kernels. Both now pack again for the kernels the original used."""
    import pickle

    bilm = copy.deepcopy(reference_bilm).set_precision("int8", keep_float=keep_float)
    copied = copy.deepcopy(bilm) if how == "deepcopy" else pickle.loads(pickle.dumps(bilm))
    assert copied.precision == "int8"
    with torch.inference_mode():
        ids = batch_to_ids(sentences * 30)  # steps of many rows too (oneDNN's recurrent kernels)
        a, b = bilm(ids, return_state=True), copied(ids, return_state=True)
    assert torch.equal(a.layers, b.layers) and torch.equal(a.state.c, b.state.c)
