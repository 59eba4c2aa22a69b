"""The LSTM's paths against each other: packed autograd, the written-out backward, the in-place inference loops, per-sentence runs."""
import pytest
import torch

from spacy_elmo.bilm import BiLM, BiLMConfig, batch_to_ids

SENTENCES = [["a", "b", "c", "d", "e"], ["f"], ["g", "h", "i"], [], ["j", "k", "l", "m", "n", "o", "p"], ["q", "r"]]


def _bilm():
    torch.manual_seed(0)
    config = BiLMConfig(char_embedding_dim=4, filters=((1, 4), (2, 4)), n_highway=1, lstm_dim=12, projection_dim=6,
                        n_layers=2, cell_clip=0.5, proj_clip=0.4)
    return BiLM(config)


def test_outputs_and_final_state_match_the_inference_path():
    bilm = _bilm()
    ids = batch_to_ids(SENTENCES)
    state = bilm.lstm.zero_state(len(SENTENCES), torch.zeros(1))
    state = type(state)(torch.randn_like(state.h) * 0.1, torch.randn_like(state.c) * 0.1)
    with torch.no_grad():
        exact = bilm(ids, state, return_state=True)
    trained = bilm(ids, state, return_state=True)
    assert trained.layers.requires_grad
    torch.testing.assert_close(trained.layers.detach(), exact.layers, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(trained.state.h.detach(), exact.state.h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(trained.state.c.detach(), exact.state.c, atol=1e-6, rtol=1e-5)


def test_gradients_equal_the_sum_of_per_sentence_gradients():
    bilm = _bilm()
    weights = torch.randn(3, len(SENTENCES), 7, 12)  # a fixed random loss over every output

    def loss_of(rows):
        out = bilm(batch_to_ids([SENTENCES[r] for r in rows])).layers
        return sum((out[:, k] * weights[:, r, : out.shape[2]]).sum() for k, r in enumerate(rows))

    bilm.zero_grad()
    loss_of(range(len(SENTENCES))).backward()
    batched = {name: p.grad.clone() for name, p in bilm.named_parameters()}
    bilm.zero_grad()
    for r in range(len(SENTENCES)):
        loss_of([r]).backward()
    for name, p in bilm.named_parameters():
        torch.testing.assert_close(batched[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)


def _gradients(bilm, ids, state, fused, monkeypatch):
    from spacy_elmo.bilm import lstm

    with monkeypatch.context() as patch:
        if not fused:
            patch.setattr(lstm, "_float32_fast_path_applies", lambda layer, x: False)
        bilm.zero_grad()
        h0, c0 = (s.detach().clone().requires_grad_() for s in state)
        out = bilm(ids, type(state)(h0, c0), return_state=True)
        torch.manual_seed(1)
        loss = (out.layers * torch.randn_like(out.layers)).sum()
        loss = loss + (out.state.h * torch.randn_like(out.state.h)).sum() + (out.state.c * torch.randn_like(out.state.c)).sum()
        loss.backward()
    grads = {name: p.grad.clone() for name, p in bilm.named_parameters()}
    return out, grads, h0.grad, c0.grad


def test_the_written_out_backward_matches_autograd_through_every_step(monkeypatch):
    """The fused step loop (`_Recurrence`) against autograd over the step ops, clipping active, a carried state."""
    bilm = _bilm()
    ids = batch_to_ids(SENTENCES)
    torch.manual_seed(2)
    zero = bilm.lstm.zero_state(len(SENTENCES), torch.zeros(1))
    state = type(zero)(torch.randn_like(zero.h) * 0.3, torch.randn_like(zero.c) * 0.3)
    with torch.no_grad():  # the clips bind somewhere, so their gradient masks are exercised
        layers = bilm(ids, state).layers
    assert (layers[1:].abs() >= 0.4 - 1e-6).any()
    fused, fused_grads, fused_h0, fused_c0 = _gradients(bilm, ids, state, True, monkeypatch)
    plain, plain_grads, plain_h0, plain_c0 = _gradients(bilm, ids, state, False, monkeypatch)
    assert torch.equal(fused.layers, plain.layers)
    assert torch.equal(fused.state.h, plain.state.h) and torch.equal(fused.state.c, plain.state.c)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    torch.testing.assert_close(fused_h0, plain_h0, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fused_c0, plain_c0, atol=1e-6, rtol=1e-5)
    assert fused.layers.grad_fn is not None


def test_the_float32_fast_paths_are_not_used_for_other_dtypes_or_under_autocast():
    from spacy_elmo.bilm import lstm

    layer = _bilm().lstm.layers[0]
    x = torch.zeros(2, 3, 4, 6)
    assert lstm._float32_fast_path_applies(layer, x)
    assert not lstm._float32_fast_path_applies(layer, x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not lstm._float32_fast_path_applies(layer, x)


def inference_and_plain_loops(monkeypatch, device="cpu"):
    """The biLM's outputs through `_run_layer_inference` and through the op-for-op `_cell` loop, with weights
    large enough that gates saturate and both clips bind, and a random initial state."""
    from spacy_elmo.bilm import lstm

    bilm = _bilm().to(device)
    with torch.no_grad():
        for p in bilm.lstm.parameters():
            p.mul_(3.0)
    ids = batch_to_ids(SENTENCES * 3).to(device)
    torch.manual_seed(3)
    zero = bilm.lstm.zero_state(ids.shape[0], torch.zeros(1, device=device))
    state = type(zero)(torch.randn_like(zero.h) * 0.3, torch.randn_like(zero.c) * 0.3)
    with torch.no_grad():
        fast = bilm(ids, state, return_state=True)
        with monkeypatch.context() as patch:
            patch.setattr(lstm, "_fast_inference_applies", lambda x: False)
            plain = bilm(ids, state, return_state=True)
    assert (plain.layers[1:].abs() >= 0.4 - 1e-6).any()  # the projection clip binds
    return fast, plain


# Input-product chunks (rows): one layer at once, a few steps per chunk, each step its own chunk.
@pytest.mark.parametrize("chunk_rows", [1 << 20, 20, 1])
def test_the_inference_loop_stays_within_float32_rounding_of_the_plain_cell(monkeypatch, chunk_rows):
    """`_run_layer_inference` (chunked input products, tanh through sigmoid, in-place state) against the op-for-op `_cell` loop."""
    from spacy_elmo.bilm import lstm

    monkeypatch.setattr(lstm, "INPUT_CHUNK_ROWS", chunk_rows)
    fast, plain = inference_and_plain_loops(monkeypatch)
    torch.testing.assert_close(fast.layers, plain.layers, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast.state.h, plain.state.h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast.state.c, plain.state.c, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_the_inference_loop_runs_the_precisions_products_within_rounding_of_the_plain_cell(monkeypatch, precision):
    """int8 and bf16 products through the shared inference loop against the op-for-op `_cell` loop with the same products."""
    from spacy_elmo.bilm import lstm
    from spacy_elmo.bilm.precision import check_device

    if precision == "int8":
        try:
            check_device(precision, torch.device("cpu"))
        except ValueError as err:
            pytest.skip(str(err))
    bilm = _bilm()
    with torch.no_grad():
        for p in bilm.lstm.parameters():
            p.mul_(3.0)
    bilm.set_precision(precision, check_device=False)  # bf16: the numbers, not the speed, on any CPU
    ids = batch_to_ids(SENTENCES * 3)
    with torch.no_grad():
        fast = bilm(ids, return_state=True)
        with monkeypatch.context() as patch:
            patch.setattr(lstm, "_fast_inference_applies", lambda x: False)
            plain = bilm(ids, return_state=True)
    torch.testing.assert_close(fast.layers, plain.layers, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.state.c, plain.state.c, atol=1e-5, rtol=1e-5)


def _bf16_training_run(bilm, ids, path, monkeypatch):
    """Outputs and gradients of a backward pass under bf16 autocast through ``path``: 'fused' (`_Recurrence` with
    bf16 products) or 'autograd' (op for op); 'fp32': no autocast (the float32 `_Recurrence`)."""
    from spacy_elmo.bilm import lstm

    bilm.zero_grad()
    with monkeypatch.context() as patch:
        if path == "autograd":
            patch.setattr(lstm, "_bf16_autocast_applies", lambda layer, x: False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=path != "fp32"):
            out = bilm(ids).layers.float()
    torch.manual_seed(1)
    (out * torch.randn_like(out)).sum().backward()
    return out.detach(), {name: p.grad.clone() for name, p in bilm.named_parameters() if ".layers." in f".{name}"}


def test_bf16_autocast_training_runs_the_written_out_backward_close_to_autograd_and_fp32(monkeypatch):
    """Pretraining's bf16 autocast: the fused step loop (bf16 products, float32 gates and state) against autograd
    through the op-for-op loop under the same autocast, and against float32."""
    from spacy_elmo.bilm import lstm

    bilm = _bilm()
    ids = batch_to_ids(SENTENCES * 3)
    layer = bilm.lstm.layers[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert lstm._bf16_autocast_applies(layer, torch.zeros(1))
    assert not lstm._bf16_autocast_applies(layer, torch.zeros(1))
    fused, fused_grads = _bf16_training_run(bilm, ids, "fused", monkeypatch)
    plain, plain_grads = _bf16_training_run(bilm, ids, "autograd", monkeypatch)
    exact, exact_grads = _bf16_training_run(bilm, ids, "fp32", monkeypatch)
    scale = float(exact.abs().max())
    assert float((fused - exact).abs().max()) < 0.02 * scale and float((plain - exact).abs().max()) < 0.02 * scale
    assert not torch.equal(fused, exact)  # the products did run in bf16
    for name, grad in exact_grads.items():
        assert fused_grads[name].dtype == torch.float32
        for other in (fused_grads[name], plain_grads[name]):
            cosine = torch.nn.functional.cosine_similarity(other.flatten(), grad.flatten(), dim=0)
            assert cosine > 0.999, name


def test_step_chunks_cover_every_step_once_within_the_bound():
    from spacy_elmo.bilm.lstm import _step_chunks

    counts = [5, 5, 4, 4, 2, 1, 1]
    assert _step_chunks(counts, 10) == [(0, 2, 10), (2, 5, 10), (5, 7, 2)]
    assert _step_chunks(counts, 3) == [(0, 1, 5), (1, 2, 5), (2, 3, 4), (3, 4, 4), (4, 6, 3), (6, 7, 1)]
    assert _step_chunks(counts, 100) == [(0, 7, 22)]
    assert _step_chunks([], 10) == []


def test_the_written_out_backward_frees_its_states_and_refuses_a_second_pass():
    bilm = _bilm()
    out = bilm(batch_to_ids(SENTENCES)).layers
    loss = out.sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
