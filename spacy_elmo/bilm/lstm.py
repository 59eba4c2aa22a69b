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
  over both directions and every live row.
"""
from bisect import bisect_left
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .config import BiLMConfig
from .dropout import dropout as lm_dropout
from .precision import baddbmm, bmm
from ..errors import Errors


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
        for index, layer in enumerate(self.layers):
            layer_input = lm_dropout(x, dropout)
            y, h, c = self._run_layer(layer, layer_input, live, state.h[index], state.c[index])
            if index > 0 and self.config.use_skip_connections:
                y = y + x
            final_h.append(h)
            final_c.append(c)
            outputs.append(torch.cat([y[0], _gather_time(y[1], reverse)], dim=-1))
            x = y
        out = torch.stack(outputs).transpose(1, 2)  # (n_layers, batch, seq, 2P)
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

        Without autograd the state is updated in place and the live rows of
        step ``t`` are read through strided views (no copies); the input
        products are computed for live positions only (no work on padding);
        with autograd, see :meth:`_run_layer_packed`.
        """
        if _needs_grad(layer, x):
            return self._run_layer_packed(layer, x, live, h0, c0)
        cfg = self.config
        _, seq, batch, _ = x.shape
        counts = [n for n in live if n > 0]
        out = x.new_zeros(2, seq, batch, cfg.projection_dim)
        h, c = h0.clone(), c0.clone()
        if not counts:
            return out, h, c
        xp_steps = bmm(_live_rows(x, counts), layer.w_input).split(counts, dim=1)  # (2, n_t, 4C) each, blocks i, j, f, o
        bias = layer.gate_bias()
        w_hidden = layer.w_hidden
        for t, n in enumerate(counts):
            gates = baddbmm(bias, h[:, :n], w_hidden)  # (2, n, 4C)
            gates += xp_steps[t]
            h_new, c_new = self._cell(gates, c[:, :n], layer)
            out[:, t, :n] = h_new
            h[:, :n] = h_new
            c[:, :n] = c_new
        return out, h, c

    def _run_layer_packed(
        self, layer: BiLSTMLayer, x: Tensor, live: List[int], h0: Tensor, c0: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """The autograd path: every tensor the backward pass sees holds live rows only.

        The live positions of all steps are packed time-major (step ``t``: rows
        ``0 .. n_t - 1``), so the input products skip the padding and each
        step's slice of them is one piece of a single ``split`` (one backward
        node, no full-size zero gradient per step); rows leave the state as
        they finish, so the state never needs a per-step copy.
        """
        cfg = self.config
        _, seq, batch, in_dim = x.shape
        counts = [n for n in live if n > 0]
        if not counts:
            return x.new_zeros(2, seq, batch, cfg.projection_dim), h0, c0
        index = _live_index(counts, batch, x.device)
        x_packed = x.reshape(2, seq * batch, in_dim).index_select(1, index)
        xp_steps = bmm(x_packed, layer.w_input).split(counts, dim=1)  # (2, n_t, 4C) each
        bias = layer.gate_bias()
        h, c = h0, c0
        finished_h: List[Tensor] = []
        finished_c: List[Tensor] = []
        steps: List[Tensor] = []
        n_prev = batch
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
        h_final = torch.cat(finished_h[::-1], dim=1)
        c_final = torch.cat(finished_c[::-1], dim=1)
        packed = torch.cat(steps, dim=1)  # (2, total live, P)
        out = x.new_zeros(2, seq * batch, cfg.projection_dim).index_copy(1, index, packed)
        return out.view(2, seq, batch, cfg.projection_dim), h_final, c_final

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


def _needs_grad(layer: nn.Module, x: Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in layer.parameters()))


def _live_rows(x: Tensor, counts: List[int]) -> Tensor:
    """``(2, seq, batch, ...)`` -> ``(2, n_live, ...)``: the live positions, packed time-major."""
    _, seq, batch = x.shape[:3]
    flat = x.reshape(2, seq * batch, *x.shape[3:])
    if len(counts) == seq and counts[-1] == batch:  # no padding
        return flat
    return flat.index_select(1, _live_index(counts, batch, x.device))


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
