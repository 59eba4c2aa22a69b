"""Combine the biLM layers into one vector per token.

Input: one ``(n_layers, n_tokens, dim)`` array per sequence; output one
``(n_tokens, width)`` array per sequence.

* ``"scalar"``: ELMo's task-specific mix ``gamma * sum_l softmax(w)_l * h_l``,
  ``w`` initialised to zeros (equal weights) and ``gamma`` to 1, so an untrained
  mix is the average of the layers; width ``dim``.
* ``"average"``: the mean of the layers; width ``dim``.
* ``"top"``: the last layer; width ``dim``.
* ``"all"``: the layers concatenated, layer 0 first; width ``n_layers * dim``.

``l2`` (``"scalar"`` only) adds ``l2 * w`` to the gradient of the mix weights
``w``, pulling them towards the plain average as the paper does (its lambda).

The weighted sums use ``einsum``, not ``tensordot``: numpy's ``tensordot`` calls
its multithreaded BLAS (OpenBLAS), whose threads keep spinning after the call
and took the CPU from the biLM's next batch (torch's products ran 1.4-1.6x
slower for ~0.1 s after each call; the small biLM's forward passes inside the
component took 0.32-0.41 s a pass instead of 0.20). ``einsum`` gives the same
sums here without BLAS.
"""
from typing import Callable, List, Optional, Tuple

from thinc.api import Model
from thinc.types import Floats2d, Floats3d

from ..errors import Errors

MIXES = ("scalar", "average", "top", "all")

InT = List[Floats3d]
OutT = List[Floats2d]


def LayerMix(mix: str = "scalar", n_layers: Optional[int] = None, dim: Optional[int] = None, l2: float = 0.0) -> Model[InT, OutT]:
    """dims: ``nL`` (layers in), ``nI`` (layer width), ``nO`` (output width);
    params (``"scalar"`` only): ``weights`` ``(nL,)`` and ``gamma`` ``(1,)``."""
    if mix not in MIXES:
        raise ValueError(Errors.E045.format(mix=mix))
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not l2 >= 0:
        raise ValueError(Errors.E047.format(what="mix_l2", value=l2, why="it must be a number >= 0 (0 turns it off)"))
    if l2 and mix != "scalar":
        raise ValueError(Errors.E047.format(
            what="mix_l2", value=l2, why=f"only mix = \"scalar\" has mix weights to pull (mix = {mix!r}): set mix_l2 = 0"
        ))
    model: Model[InT, OutT] = Model(
        f"layer_mix_{mix}",
        forward,
        init=init,
        dims={"nL": n_layers, "nI": dim, "nO": None},
        params={"weights": None, "gamma": None} if mix == "scalar" else {},
        attrs={"mix": mix, "l2": float(l2)},
    )
    if n_layers is not None and dim is not None:
        set_mix_dims(model, n_layers, dim)
    return model


def output_width(mix: str, n_layers: int, dim: int) -> int:
    return n_layers * dim if mix == "all" else dim


def set_mix_dims(model: Model, n_layers: int, dim: int) -> None:
    model.set_dim("nL", n_layers)
    model.set_dim("nI", dim)
    model.set_dim("nO", output_width(model.attrs["mix"], n_layers, dim))


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    if X:
        set_mix_dims(model, X[0].shape[0], X[0].shape[2])
    if model.attrs["mix"] == "scalar":
        n_layers = model.get_dim("nL")
        model.set_param("weights", model.ops.alloc1f(n_layers))
        gamma = model.ops.alloc1f(1)
        gamma[0] = 1.0
        model.set_param("gamma", gamma)


def forward(model: Model[InT, OutT], X: InT, is_train: bool) -> Tuple[OutT, Callable]:
    mix = model.attrs["mix"]
    ops = model.ops
    lengths = [x.shape[1] for x in X]
    n_layers, dim = model.get_dim("nL"), model.get_dim("nI")
    if not X:
        return [], lambda dY: []
    # (n_layers, total_tokens, dim): every sequence at once
    stacked = ops.xp.concatenate(X, axis=1) if len(X) > 1 else X[0]
    if mix == "scalar":
        weights = model.get_param("weights")
        gamma = float(model.get_param("gamma")[0])
        s = ops.softmax(weights)
        mixed = ops.xp.einsum("l,lnd->nd", s, stacked)  # sum_l s_l h_l, without BLAS (module docstring)
        Y = mixed * gamma
    elif mix == "average":
        Y = stacked.mean(axis=0)
    elif mix == "top":
        Y = stacked[-1]
    else:
        Y = stacked.transpose(1, 0, 2).reshape(stacked.shape[1], n_layers * dim)
    Y = ops.xp.ascontiguousarray(Y, dtype="float32")
    outputs = _split(ops, Y, lengths)

    def backprop(dY: OutT) -> InT:
        dYc = ops.xp.concatenate(dY, axis=0) if len(dY) > 1 else dY[0]
        if mix == "scalar":
            # d gamma = <dY, mixed>; d s_l = gamma <dY, h_l>; softmax Jacobian
            model.inc_grad("gamma", ops.asarray1f([float((dYc * mixed).sum())]))
            ds = ops.xp.einsum("lnd,nd->l", stacked, dYc) * gamma
            d_weights = s * (ds - (s * ds).sum())
            l2 = model.attrs.get("l2", 0.0)
            if l2:
                d_weights = d_weights + l2 * weights
            model.inc_grad("weights", d_weights.astype("float32"))
            dX = s[:, None, None] * (dYc * gamma)[None]
        elif mix == "average":
            dX = ops.xp.broadcast_to(dYc[None] / n_layers, stacked.shape)
        elif mix == "top":
            dX = ops.xp.zeros(stacked.shape, dtype="float32")
            dX[-1] = dYc
        else:
            dX = dYc.reshape(dYc.shape[0], n_layers, dim).transpose(1, 0, 2)
        dX = ops.xp.ascontiguousarray(dX, dtype="float32")
        return _split(ops, dX, lengths, axis=1)

    return outputs, backprop


def _split(ops, array, lengths: List[int], axis: int = 0) -> list:
    out = []
    start = 0
    for n in lengths:
        index = [slice(None)] * array.ndim
        index[axis] = slice(start, start + n)
        out.append(array[tuple(index)])
        start += n
    return out
