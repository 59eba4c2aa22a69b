"""The biLM's recurrent part: LSTM layers with a projected state, both directions at once.

One cell step, in TensorFlow's LSTMCell form (gate blocks in the stored order
i, j, f, o; ``forget_bias`` 1.0 added to f at run time, as TensorFlow does)::

    i, j, f, o = x_t @ W_x + h_{t-1} @ W_h + b
    c_t = clip(sigmoid(f + 1) * c_{t-1} + sigmoid(i) * tanh(j), cell_clip)
    h_t = clip((sigmoid(o) * tanh(c_t)) @ W_p, proj_clip)

Layers are stacked per direction; with skip connections every layer but the
first adds its input to its output.

How it is made fast:

* both directions run in the same time loop: the backward direction sees each
  sequence reversed *within its own length*, so position ``t`` of both is live
  for the same rows, and every step is one batched matrix product for the two;
* the input-to-hidden products of a whole layer are one batched matrix product
  before the loop, over the live positions only (packed time-major, so step
  ``t``'s products are one contiguous slice); the loop does only ``h @ W_h``,
  the gates and ``@ W_p``;
* rows are sorted by length, so step ``t`` touches only the ``n_t`` rows still
  running (no work on padding, and a finished row keeps its final state);
* the char-CNN-free loop holds ~10 tensor operations per step and layer, all
  over both directions and every live row;
* inference (:meth:`StackedBiLSTM._run_layer_inference`, every precision):
  the input products a few steps at a time, one contiguous ``sigmoid`` over
  the four gate blocks (``tanh`` through ``sigmoid``), state updated in place,
  within 1e-6 of the op-for-op loop (:meth:`StackedBiLSTM._cell`, kept for
  autograd through int8 / bf16 / autocast, and for inference under autocast);
* inference with packed weights (:meth:`StackedBiLSTM._run_layer_inference_direct`):
  the same loop, one direction at a time, one packed product each
  (:func:`~.precision.layer_products`): int8 always (without the stacked copies:
  1.3x; steps of many rows on oneDNN's int8 kernels), float32 and bf16 through oneDNN where it
  pays (AVX512 CPUs, :func:`~.precision.use_onednn`; float32 2x the default BLAS);
* training (:class:`_Recurrence`): the step loop is one autograd node with its
  backward written out, the weights' gradients one product each over all steps;
  under bf16 autocast (pretraining's ``training.precision = "bf16"``) the same
  node runs its products in bf16 and its element-wise work in float32.
"""
from bisect import bisect_left
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .config import BiLMConfig
from .dropout import dropout as lm_dropout
from .precision import INT8, LayerProducts, baddbmm, bmm, layer_products
from ..errors import Errors

# The inference loop computes the input products of a few steps at a
# time, at most this many rows per direction (more when one step has more),
# into one reused buffer: a whole layer's products at once (66 MB for 4,096
# positions of a 512-cell LSTM) cost fresh pages and cache misses (80 -> 43 ms
# there); fewer rows make the product itself slower (at 2x4096_512, 64 rows:
# 68 GFLOP/s, 256: 88, as the whole layer at once).
INPUT_CHUNK_ROWS = 256


class LSTMState(NamedTuple):
    """LSTM state of every layer and direction (0 = forward, 1 = backward).

    h: ``(n_layers, 2, batch, projection_dim)``; c: ``(n_layers, 2, batch, lstm_dim)``.
    """

    h: Tensor
    c: Tensor


class BiLSTMLayer(nn.Module):
    """One projected-LSTM layer for both directions; parameters stacked on dim 0.

    w_input: ``(2, input_dim, 4 * lstm_dim)``; w_hidden: ``(2, projection_dim, 4 * lstm_dim)``;
    bias: ``(2, 4 * lstm_dim)`` (as stored, without the forget bias);
    w_proj: ``(2, lstm_dim, projection_dim)``.
    """

    def __init__(self, input_dim: int, lstm_dim: int, projection_dim: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.lstm_dim = lstm_dim
        self.projection_dim = projection_dim
        self.w_input = nn.Parameter(torch.empty(2, input_dim, 4 * lstm_dim))
        self.w_hidden = nn.Parameter(torch.empty(2, projection_dim, 4 * lstm_dim))
        self.bias = nn.Parameter(torch.zeros(2, 4 * lstm_dim))
        self.w_proj = nn.Parameter(torch.empty(2, lstm_dim, projection_dim))
        offset = torch.zeros(4 * lstm_dim)
        offset[2 * lstm_dim : 3 * lstm_dim] = forget_bias
        self.register_buffer("forget_offset", offset, persistent=False)
        for w in (self.w_input, self.w_hidden, self.w_proj):
            for d in range(2):
                nn.init.xavier_uniform_(w[d])

    def gate_bias(self) -> Tensor:
        """``(2, 1, 4 * lstm_dim)``: the stored bias plus TensorFlow's forget bias."""
        return (self.bias + self.forget_offset).unsqueeze(1)


class StackedBiLSTM(nn.Module):
    """``n_layers`` of :class:`BiLSTMLayer`, skip connections and clipping from the config."""

    def __init__(self, config: BiLMConfig) -> None:
        super().__init__()
        self.config = config
        P, C = config.projection_dim, config.lstm_dim
        self.layers = nn.ModuleList(BiLSTMLayer(P, C, P, config.forget_bias) for _ in range(config.n_layers))

    def zero_state(self, batch_size: int, like: Tensor) -> LSTMState:
        cfg = self.config
        h = like.new_zeros(cfg.n_layers, 2, batch_size, cfg.projection_dim)
        c = like.new_zeros(cfg.n_layers, 2, batch_size, cfg.lstm_dim)
        return LSTMState(h, c)

    def forward(
        self, inputs: Tensor, lengths: Tensor, state: Optional[LSTMState] = None, *, dropout: float = 0.0
    ) -> Tuple[Tensor, LSTMState]:
        """Run the stack.

        inputs: ``(batch, seq, projection_dim)``, right-padded.
        lengths: ``(batch,)`` number of live positions of each row.
        state: initial state (zeros when ``None``), rows in input order.
        dropout: rate applied to every layer's input (language-model training only).

        Returns ``(outputs, final_state)``: outputs ``(n_layers, batch, seq, 2 * projection_dim)``,
        ``[forward; backward]``, zero at padding; final_state per row, in input order
        (forward after the last live position, backward after position 0).
        """
        batch, seq, _ = inputs.shape
        if state is None:
            state = self.zero_state(batch, inputs)
        else:
            self._check_state(state, batch)
        if batch == 0 or seq == 0:
            out = inputs.new_zeros(self.config.n_layers, batch, seq, self.config.output_dim)
            return out, state
        lengths = lengths.to(device=inputs.device, dtype=torch.long)
        sorted_lengths, order = torch.sort(lengths, descending=True, stable=True)
        needs_sort = bool((order != torch.arange(batch, device=order.device)).any())
        if needs_sort:
            inputs = inputs.index_select(0, order)
            state = LSTMState(state.h.index_select(2, order), state.c.index_select(2, order))
        # Rows still live at step t: a non-increasing list, computed once on the host.
        asc = sorted_lengths.tolist()[::-1]
        live = [batch - bisect_left(asc, t + 1) for t in range(seq)]
        # Time-major from here: (seq, batch, .), so that step t is one block.
        reverse = _reverse_index(sorted_lengths, seq)  # (seq, batch)
        x_fwd = inputs.transpose(0, 1)
        x = torch.stack([x_fwd, _gather_time(x_fwd, reverse)])  # (2, seq, batch, P)
        outputs: List[Tensor] = []
        final_h: List[Tensor] = []
        final_c: List[Tensor] = []
        # Without autograd the layers' outputs go straight into one buffer, and the skip
        # connection adds in place (the same sums, two copies of every layer fewer).
        inference = not torch.is_grad_enabled() or not (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        P = self.config.projection_dim
        out = x.new_empty(len(self.layers), seq, batch, 2 * P) if inference else None
        for index, layer in enumerate(self.layers):
            layer_input = lm_dropout(x, dropout)
            y, h, c = self._run_layer(layer, layer_input, live, state.h[index], state.c[index])
            if index > 0 and self.config.use_skip_connections:
                y = y.add_(x) if inference and y.dtype == x.dtype else y + x
            final_h.append(h)
            final_c.append(c)
            if out is not None:
                out[index, :, :, :P] = y[0]
                out[index, :, :, P:] = _gather_time(y[1], reverse)
            else:
                outputs.append(torch.cat([y[0], _gather_time(y[1], reverse)], dim=-1))
            x = y
        out = (out if out is not None else torch.stack(outputs)).transpose(1, 2)  # (n_layers, batch, seq, 2P)
        new_state = LSTMState(torch.stack(final_h), torch.stack(final_c))
        if needs_sort:
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(batch, device=order.device)
            out = out.index_select(1, inverse)
            new_state = LSTMState(new_state.h.index_select(2, inverse), new_state.c.index_select(2, inverse))
        return out, new_state

    def _run_layer(
        self, layer: BiLSTMLayer, x: Tensor, live: List[int], h0: Tensor, c0: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """x: ``(2, seq, batch, in)`` -> ``(2, seq, batch, P)`` and the final ``h``, ``c`` ``(2, batch, .)``.

        Without autograd (and without autocast): :meth:`_run_layer_inference`;
        otherwise :meth:`_run_layer_packed`, which also serves inference under
        autocast (its op-for-op loop keeps autocast's per-op casts).
        """
        if _needs_grad(layer, x) or not _fast_inference_applies(x):
            return self._run_layer_packed(layer, x, live, h0, c0)
        cfg = self.config
        _, seq, batch, _ = x.shape
        counts = [n for n in live if n > 0]
        out = x.new_zeros(2, seq, batch, cfg.projection_dim)
        h, c = h0.clone(), c0.clone()
        if not counts:
            return out, h, c
        return self._run_layer_inference(layer, x, counts, out, h, c)

    def _run_layer_inference(
        self, layer: BiLSTMLayer, x: Tensor, counts: List[int], out: Tensor, h: Tensor, c: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """The inference loop with fewer passes over the gates (within 1e-6 of :meth:`_cell`).

        Weights with packed products (int8; float32 and bf16 where oneDNN is on:
        :func:`~.precision.layer_products`) take :meth:`_run_layer_inference_direct`.
        Otherwise float32 weights run their products into reused buffers, and
        bf16 ones (a GPU, or oneDNN off) through the precision's batched products,
        with the rest of the loop shared.

        * the input products (bias included) a few steps at a time into one
          reused buffer (:data:`INPUT_CHUNK_ROWS`); each step's recurrent
          product accumulates onto its slice;
        * one ``sigmoid`` over all four gate blocks, contiguous, with the ``j``
          block doubled first (exact: a power of two), since
          ``tanh(x) = 2 * sigmoid(2x) - 1``: on this AVX2 CPU ``tanh`` costs
          3.5x ``sigmoid`` per element; ``tanh(c)`` the same way, as
          ``2 * (sigmoid(2c) - 0.5)`` with the factor 2 applied after the
          projection (exact: scaling by a power of two commutes with rounding);
        * the cell state updated in place; each step's ``h`` kept only in the
          output and read from there at the next step (the rows live at ``t``
          were all live at ``t - 1``), each row's final ``h`` copied once at the end.

        ``tanh`` through ``sigmoid`` differs from ``torch.tanh`` by at most a few
        float32 ulps of 1 (absolute), far inside the reference fixtures' tolerance.
        """
        cfg = self.config
        C = cfg.lstm_dim
        batch = h.shape[1]
        x_live = _live_rows(x, counts)  # (2, N, in)
        bias, w_input, w_hidden, w_proj = layer.gate_bias(), layer.w_input, layer.w_hidden, layer.w_proj
        exact = _float32_fast_path_applies(layer, x)
        products = layer_products(w_input, w_hidden, w_proj, bias, x) if x.dtype == torch.float32 else None
        if products is not None:
            return self._run_layer_inference_direct(products, x_live, counts, out, h, c)
        chunks = _step_chunks(counts, INPUT_CHUNK_ROWS)
        input_buffer = x.new_empty(2 * max(rows for _, _, rows in chunks) * 4 * C) if exact else None
        gate_buffer = x.new_empty(2 * batch * 4 * C) if exact else None
        tanh_buffer = x.new_empty(2 * batch * C)
        row = 0
        for first, last, rows in chunks:
            if exact:
                xp = input_buffer[: 2 * rows * 4 * C].view(2, rows, 4 * C)
                torch.baddbmm(bias, x_live[:, row : row + rows], w_input, out=xp)
            else:
                xp = baddbmm(bias, x_live[:, row : row + rows], w_input)
            row += rows
            offset = 0
            for t in range(first, last):
                n = counts[t]
                h_prev = h[:, :n] if t == 0 else out[:, t - 1, :n]  # rows < n were all live at t - 1
                if exact:
                    gates = torch.baddbmm(
                        xp[:, offset : offset + n], h_prev, w_hidden, out=gate_buffer[: 2 * n * 4 * C].view(2, n, 4 * C)
                    )  # (2, n, 4C); an in-place baddbmm_ on the slice ran 1.4x slower at 2x4096_512
                else:
                    gates = bmm(h_prev, w_hidden).add_(xp[:, offset : offset + n])
                offset += n
                gates[..., C : 2 * C].mul_(2.0)
                gates.sigmoid_()
                i, j2, f, o = gates.split(C, dim=-1)  # j2 = sigmoid(2 j): tanh(j) = 2 * j2 - 1
                c_t = c[:, :n]  # updated in place: f * c + sigmoid(i) * tanh(j) = f * c + 2 * i * j2 - i
                c_t.mul_(f).addcmul_(i, j2, value=2.0).sub_(i)
                if cfg.cell_clip is not None:
                    c_t.clamp_(-cfg.cell_clip, cfg.cell_clip)
                # sigmoid(o) * tanh(c) = 2 * o * (sigmoid(2 c) - 0.5); the 2 after the projection (exact)
                m = torch.mul(c_t, 2.0, out=tanh_buffer[: 2 * n * C].view(2, n, C))
                m.sigmoid_().sub_(0.5).mul_(o)
                h_t = bmm(m, w_proj).mul_(2.0)  # (2, n, P); bmm into the strided output ran slower
                if cfg.proj_clip is not None:
                    h_t.clamp_(-cfg.proj_clip, cfg.proj_clip)
                out[:, t, :n] = h_t
        _copy_final_h(out, h, counts)
        return out, h, c

    def _run_layer_inference_direct(
        self, products: "LayerProducts", x_live: Tensor, counts: List[int], out: Tensor, h: Tensor, c: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """:meth:`_run_layer_inference`'s loop with one product per direction on packed weights
        (:func:`~.precision.layer_products`: oneDNN float32 or bfloat16, or int8), one direction
        after the other within each step (a packed product takes one matrix; no stacked
        copies). The same element-wise steps on float32 gates and state; float32 products
        differ from the default BLAS's in summation order only, int8 ones are those of the
        stacked loop bit for bit except the recurrent products of steps with many rows, which
        run on oneDNN's int8 kernels (float32 rounding apart: :data:`~.precision.ONEDNN_INT8_MIN_ROWS`)."""
        cfg = self.config
        C = cfg.lstm_dim
        row = 0
        for first, last, rows in _step_chunks(counts, INPUT_CHUNK_ROWS):
            xp = [products.input(d, x_live[d, row : row + rows]) for d in range(2)]  # (rows, 4C), bias included
            row += rows
            offset = 0
            for t in range(first, last):
                n = counts[t]
                for d in range(2):
                    h_prev = h[d, :n] if t == 0 else out[d, t - 1, :n]  # rows < n were all live at t - 1
                    gates = products.gates(d, h_prev, xp[d][offset : offset + n])  # (n, 4C) float32
                    gates[:, C : 2 * C].mul_(2.0)
                    gates.sigmoid_()
                    i, j2, f, o = gates.split(C, dim=-1)  # j2 = sigmoid(2 j): tanh(j) = 2 * j2 - 1
                    c_t = c[d, :n]
                    c_t.mul_(f).addcmul_(i, j2, value=2.0).sub_(i)
                    if cfg.cell_clip is not None:
                        c_t.clamp_(-cfg.cell_clip, cfg.cell_clip)
                    m = torch.mul(c_t, 2.0)
                    m.sigmoid_().sub_(0.5).mul_(o)
                    h_t = products.proj(d, m).mul_(2.0)  # (n, P)
                    if cfg.proj_clip is not None:
                        h_t.clamp_(-cfg.proj_clip, cfg.proj_clip)
                    out[d, t, :n] = h_t
                offset += n
        _copy_final_h(out, h, counts)
        return out, h, c

    def _run_layer_packed(
        self, layer: BiLSTMLayer, x: Tensor, live: List[int], h0: Tensor, c0: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """The autograd path (and inference under autocast): every tensor the backward pass sees holds live rows only.

        The live positions of all steps are packed time-major (step ``t``: rows
        ``0 .. n_t - 1``), so the input products skip the padding and each
        step's slice of them is one contiguous block. In float32 the step loop
        is one autograd node with its backward written out
        (:class:`_Recurrence`: per step only the two products that carry the
        gradient back in time, the recurrent and projection weights' gradients
        one product each over all steps); otherwise autograd runs through
        :meth:`_steps_autograd`.
        """
        cfg = self.config
        _, seq, batch, in_dim = x.shape
        counts = [n for n in live if n > 0]
        if not counts:
            return x.new_zeros(2, seq, batch, cfg.projection_dim), h0, c0
        index = _live_index(counts, batch, x.device)
        x_packed = x.reshape(2, seq * batch, in_dim).index_select(1, index)
        if _float32_fast_path_applies(layer, x):
            xp = bmm(x_packed, layer.w_input)  # (2, total live, 4C)
            packed, h_final, c_final = _Recurrence.apply(
                xp, layer.gate_bias(), layer.w_hidden, layer.w_proj, h0, c0, counts, cfg.cell_clip, cfg.proj_clip, None
            )
        elif _bf16_autocast_applies(layer, x):
            xp = torch.bmm(x_packed, layer.w_input)  # bf16 under the autocast
            with torch.autocast(x.device.type, enabled=False):  # the node casts its products itself
                packed, h_final, c_final = _Recurrence.apply(
                    xp, layer.gate_bias(), layer.w_hidden, layer.w_proj, h0.float(), c0.float(), counts,
                    cfg.cell_clip, cfg.proj_clip, torch.bfloat16,
                )
        else:
            xp = bmm(x_packed, layer.w_input)
            packed, h_final, c_final = self._steps_autograd(layer, xp, counts, h0, c0)
        out = packed.new_zeros(2, seq * batch, cfg.projection_dim).index_copy(1, index, packed)
        return out.view(2, seq, batch, cfg.projection_dim), h_final, c_final

    def _steps_autograd(
        self, layer: BiLSTMLayer, xp: Tensor, counts: List[int], h0: Tensor, c0: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """The step loop through autograd (int8, bf16, autocast): packed input
        products ``(2, N, 4C)`` -> packed outputs ``(2, N, P)``, final ``h``, ``c``.

        Each step's products are one piece of a single ``split`` (one backward
        node, no full-size zero gradient per step); rows leave the state as
        they finish, so the state never needs a per-step copy.
        """
        xp_steps = xp.split(counts, dim=1)  # (2, n_t, 4C) each
        bias = layer.gate_bias()
        h, c = h0, c0
        finished_h: List[Tensor] = []
        finished_c: List[Tensor] = []
        steps: List[Tensor] = []
        n_prev = h0.shape[1]
        for t, n in enumerate(counts):
            if n < n_prev:  # rows n .. n_prev - 1 ended at the previous step: their state is final
                finished_h.append(h[:, n:])
                finished_c.append(c[:, n:])
                h, c = h[:, :n], c[:, :n]
            gates = baddbmm(bias, h, layer.w_hidden) + xp_steps[t]
            h, c = self._cell(gates, c, layer)
            steps.append(h)
            n_prev = n
        finished_h.append(h)
        finished_c.append(c)
        return torch.cat(steps, dim=1), torch.cat(finished_h[::-1], dim=1), torch.cat(finished_c[::-1], dim=1)

    def _cell(self, gates: Tensor, c: Tensor, layer: BiLSTMLayer) -> Tuple[Tensor, Tensor]:
        """gates ``(2, n, 4C)`` (blocks i, j, f, o, biases included), c ``(2, n, C)`` -> new h ``(2, n, P)``, c."""
        cfg = self.config
        C = cfg.lstm_dim
        ij = torch.sigmoid(gates[..., :C]) * torch.tanh(gates[..., C : 2 * C])
        fo = torch.sigmoid(gates[..., 2 * C :])
        c_new = torch.addcmul(ij, fo[..., :C], c)
        if cfg.cell_clip is not None:
            c_new = c_new.clamp(-cfg.cell_clip, cfg.cell_clip)
        h_new = bmm(fo[..., C:] * torch.tanh(c_new), layer.w_proj)  # (2, n, P)
        if cfg.proj_clip is not None:
            h_new = h_new.clamp(-cfg.proj_clip, cfg.proj_clip)
        return h_new, c_new

    def _check_state(self, state: LSTMState, batch: int) -> None:
        cfg = self.config
        h_shape = (cfg.n_layers, 2, batch, cfg.projection_dim)
        c_shape = (cfg.n_layers, 2, batch, cfg.lstm_dim)
        if tuple(state.h.shape) != h_shape or tuple(state.c.shape) != c_shape:
            raise ValueError(
                Errors.E022.format(
                    h_shape=h_shape, c_shape=c_shape, got_h=tuple(state.h.shape), got_c=tuple(state.c.shape)
                )
            )


class _Recurrence(torch.autograd.Function):
    """The step loop of one layer, both directions, with a hand-written backward pass.

    forward(xp, bias, w_hidden, w_proj, h0, c0, counts, cell_clip, proj_clip, low) -> (out, h_final, c_final)

    xp: ``(2, N, 4C)`` input products of the live positions, packed time-major
    (step ``t``: rows ``0 .. counts[t] - 1``, ``N = sum(counts)``); bias:
    ``(2, 1, 4C)`` (forget bias included); w_hidden ``(2, P, 4C)``; w_proj
    ``(2, C, P)``; h0 ``(2, batch, P)``, c0 ``(2, batch, C)``, rows sorted by
    length. out: ``(2, N, P)`` packed like xp; h_final, c_final: ``(2, batch, .)``.

    The forward pass is :meth:`StackedBiLSTM._cell`'s arithmetic op for op (so
    its outputs are those of the autograd path). Clipping passes the gradient
    where the unclipped value lies within the bounds, ends included, as
    ``clamp`` does.

    low: ``None`` (everything float32), or ``torch.bfloat16``: every matrix
    product, forward and backward, takes its operands in bf16 and returns
    float32 (as autocast would); xp comes in bf16 (the output of a bf16
    product) and its gradient goes back in bf16, as autocast's would; the
    gates, state, clipping and the weights' gradients stay float32.
    """

    @staticmethod
    def forward(ctx, xp, bias, w_hidden, w_proj, h0, c0, counts, cell_clip, proj_clip, low):  # type: ignore[override]
        C = w_proj.shape[1]
        w_hidden_low = w_hidden if low is None else w_hidden.to(low)
        w_proj_low = w_proj if low is None else w_proj.to(low)
        batch = h0.shape[1]
        h, c = h0, c0
        finished_h: List[Tensor] = []
        finished_c: List[Tensor] = []
        steps: List[Tensor] = []
        saved: List[Tuple[Tensor, ...]] = []
        offset = 0
        n_prev = batch
        for n in counts:
            if n < n_prev:
                finished_h.append(h[:, n:])
                finished_c.append(c[:, n:])
                h, c = h[:, :n], c[:, :n]
            if low is None:
                gates = torch.baddbmm(bias, h, w_hidden) + xp[:, offset : offset + n]
            else:
                gates = torch.bmm(h.to(low), w_hidden_low).float().add_(bias).add_(xp[:, offset : offset + n])
            i = torch.sigmoid(gates[..., :C])
            j = torch.tanh(gates[..., C : 2 * C])
            fo = torch.sigmoid(gates[..., 2 * C :])
            c_raw = torch.addcmul(i * j, fo[..., :C], c)
            c_new = c_raw.clamp(-cell_clip, cell_clip) if cell_clip is not None else c_raw
            tanh_c = torch.tanh(c_new)
            m = fo[..., C:] * tanh_c
            h_raw = torch.bmm(m, w_proj) if low is None else torch.bmm(m.to(low), w_proj_low).float()
            h_new = h_raw.clamp(-proj_clip, proj_clip) if proj_clip is not None else h_raw
            saved.append((h, c, i, j, fo, c_raw, tanh_c, m, h_raw))
            steps.append(h_new)
            h, c = h_new, c_new
            offset += n
            n_prev = n
        finished_h.append(h)
        finished_c.append(c)
        ctx.steps = saved
        ctx.counts = counts
        ctx.clips = (cell_clip, proj_clip)
        ctx.low = low
        ctx.save_for_backward(w_hidden, w_proj)
        return torch.cat(steps, dim=1), torch.cat(finished_h[::-1], dim=1), torch.cat(finished_c[::-1], dim=1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, d_h_final, d_c_final):  # type: ignore[override]
        w_hidden, w_proj = ctx.saved_tensors
        cell_clip, proj_clip = ctx.clips
        low = ctx.low
        counts: List[int] = ctx.counts
        saved = ctx.steps
        if saved is None:
            raise RuntimeError(
                "Trying to backward through the LSTM a second time: its saved states were freed after the "
                "first backward (pass retain_graph=True only where the LSTM is not in the graph)."
            )
        ctx.steps = None  # freed now, as tensors saved with save_for_backward are
        C = w_proj.shape[1]
        N = sum(counts)
        P = w_proj.shape[2]
        # running gradients of the state, all rows; rows not yet reached hold their final state's
        dh = d_h_final.clone()
        dc = d_c_final.clone()
        d_gates = d_out.new_empty(2, N, 4 * C, dtype=low or d_out.dtype)  # bf16: xp's gradient, no cast
        d_h_raw = d_out.new_empty(2, N, P)

        def product(a: Tensor, b: Tensor) -> Tensor:  # float32 results, bf16 arithmetic when low
            return torch.bmm(a, b) if low is None else torch.bmm(a.to(low), b.to(low)).float()

        w_hidden_t = w_hidden.transpose(1, 2) if low is None else w_hidden.to(low).transpose(1, 2)
        w_proj_t = w_proj.transpose(1, 2) if low is None else w_proj.to(low).transpose(1, 2)
        offset = N
        for t in range(len(counts) - 1, -1, -1):
            n = counts[t]
            offset -= n
            rows = slice(offset, offset + n)
            h_prev, c_prev, i, j, fo, c_raw, tanh_c, m, h_raw = saved[t]
            g_h = dh[:, :n] + d_out[:, rows]
            if proj_clip is not None:
                g_h.masked_fill_(h_raw.abs() > proj_clip, 0.0)
            d_h_raw[:, rows] = g_h
            d_m = product(g_h, w_proj_t)  # (2, n, C)
            o = fo[..., C:]
            g_c = dc[:, :n] + d_m * o * (1.0 - tanh_c * tanh_c)
            if cell_clip is not None:
                g_c.masked_fill_(c_raw.abs() > cell_clip, 0.0)
            f = fo[..., :C]
            g = d_gates[:, rows]
            torch.mul(g_c * j, i * (1.0 - i), out=g[..., :C])
            torch.mul(g_c * i, 1.0 - j * j, out=g[..., C : 2 * C])
            torch.mul(g_c * c_prev, f * (1.0 - f), out=g[..., 2 * C : 3 * C])
            torch.mul(d_m * tanh_c, o * (1.0 - o), out=g[..., 3 * C :])
            dc[:, :n] = g_c * f
            dh[:, :n] = product(g, w_hidden_t)
        h_prev_all = torch.cat([step[0] for step in saved], dim=1)  # (2, N, P)
        m_all = torch.cat([step[7] for step in saved], dim=1)  # (2, N, C)
        d_w_hidden = product(h_prev_all.transpose(1, 2), d_gates)
        d_w_proj = product(m_all.transpose(1, 2), d_h_raw)
        d_bias = d_gates.sum(dim=1, keepdim=True, dtype=torch.float32)
        return d_gates, d_bias, d_w_hidden, d_w_proj, dh, dc, None, None, None, None


def _float32_fast_path_applies(layer: nn.Module, x: Tensor) -> bool:
    """float32 weights and inputs, no autocast, no int8 products: the case
    :class:`_Recurrence` and :meth:`StackedBiLSTM._run_layer_inference` are written for."""
    if x.dtype != torch.float32 or torch.is_autocast_enabled(x.device.type):
        return False
    return _float32_weights(layer)


def _bf16_autocast_applies(layer: nn.Module, x: Tensor) -> bool:
    """Training under bf16 autocast with float32 weights: :class:`_Recurrence` with bf16 products."""
    device = x.device.type
    if not torch.is_autocast_enabled(device) or torch.get_autocast_dtype(device) != torch.bfloat16:
        return False
    return _float32_weights(layer)


def _float32_weights(layer: nn.Module) -> bool:
    return all(p.dtype == torch.float32 and not hasattr(p, INT8) for p in layer.parameters())


def _fast_inference_applies(x: Tensor) -> bool:
    """:meth:`StackedBiLSTM._run_layer_inference` runs every precision; under
    autocast the op-for-op loop runs instead, with autocast's per-op casts as before."""
    return not torch.is_autocast_enabled(x.device.type)


def _needs_grad(layer: nn.Module, x: Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in layer.parameters()))


def _copy_final_h(out: Tensor, h: Tensor, counts: List[int]) -> None:
    """Each row's final ``h`` is its output at its last live step: copy it into ``h`` ``(2, batch, P)``."""
    for t, n in enumerate(counts):
        n_next = counts[t + 1] if t + 1 < len(counts) else 0
        if n_next < n:
            h[:, n_next:n] = out[:, t, n_next:n]


def _live_rows(x: Tensor, counts: List[int]) -> Tensor:
    """``(2, seq, batch, ...)`` -> ``(2, n_live, ...)``: the live positions, packed time-major."""
    _, seq, batch = x.shape[:3]
    flat = x.reshape(2, seq * batch, *x.shape[3:])
    if len(counts) == seq and counts[-1] == batch:  # no padding
        return flat
    return flat.index_select(1, _live_index(counts, batch, x.device))


def _step_chunks(counts: List[int], max_rows: int) -> List[Tuple[int, int, int]]:
    """Consecutive steps grouped so that each group's live rows stay within ``max_rows``
    (a step with more rows is a group of its own): ``(first step, end step, rows)`` each."""
    chunks: List[Tuple[int, int, int]] = []
    first, rows = 0, 0
    for t, n in enumerate(counts):
        if rows and rows + n > max_rows:
            chunks.append((first, t, rows))
            first, rows = t, 0
        rows += n
    if rows:
        chunks.append((first, len(counts), rows))
    return chunks


def _live_index(counts: List[int], batch: int, device: torch.device) -> Tensor:
    """Positions ``t * batch + b`` of the live rows ``b < counts[t]`` of each step, time-major.

    Built on the host and moved once (on a GPU, one copy instead of a launch per step).
    """
    index = torch.cat([torch.arange(n) + t * batch for t, n in enumerate(counts)])
    return index.to(device)


def _reverse_index(lengths: Tensor, seq: int) -> Tensor:
    """``(seq, batch)`` time index that reverses each row within its length (an involution)."""
    t = torch.arange(seq, device=lengths.device).unsqueeze(1)
    L = lengths.unsqueeze(0)
    return torch.where(t < L, L - 1 - t, t)


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """``x[index[t, b], b]`` for time-major ``x`` of shape ``(seq, batch, dim)``."""
    return x.gather(0, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
