"""Inverted dropout for language-model training, cheaper on CPU than ``F.dropout``.

``F.dropout`` draws its mask with ``bernoulli_``, which on CPU costs ~3x a
uniform draw; here the mask is ``uniform >= p``, scaled by ``1 / (1 - p)`` in
place: the same distribution (each element kept with probability ``1 - p``,
expectation unchanged), one fused mask tensor, and autograd multiplies the
gradient by the same mask.
"""
import torch
from torch import Tensor
from torch.nn import functional as F


def dropout(x: Tensor, p: float) -> Tensor:
    """``x`` with each element zeroed with probability ``p``, the rest scaled by ``1 / (1 - p)``."""
    if p <= 0.0:
        return x
    if p >= 1.0 or x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    mask = torch.rand(x.shape, dtype=x.dtype, device=x.device).ge_(p).mul_(1.0 / (1.0 - p))
    return x * mask
