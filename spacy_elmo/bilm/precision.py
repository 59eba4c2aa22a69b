"""Inference precision of the biLM: the exact float32 path, or bfloat16 weights.

``"fp32"`` (the default) is the exact path that matches bilm-tf. ``"bf16"``
stores every weight matrix (char embedding, convolutions, highway, projections,
LSTM) in bfloat16, halving the weights' memory; matrix products run in
bfloat16 (float32 accumulation where the BLAS offers it, as oneDNN does on CPUs
with AVX512-BF16 / AMX, and on GPUs), while biases, gates, the LSTM state and
the outputs stay float32. For inference only (no autograd through bf16 weights).

The helpers below are what the modules call for their products: with weights
and inputs of one dtype they are the plain torch ops (the exact path is
unchanged); with bfloat16 weights they cast the input to bfloat16 and the
product back to float32.
"""
from typing import Tuple

import torch
from torch import Tensor, nn

PRECISIONS: Tuple[str, ...] = ("fp32", "bf16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def check_precision(value: object) -> str:
    if value not in PRECISIONS:
        raise ValueError(
            f"Invalid precision {value!r}: use one of {', '.join(repr(p) for p in PRECISIONS)} "
            "('fp32' is the exact path; 'bf16' halves the weights' memory, for inference)."
        )
    return value  # type: ignore[return-value]


def bf16_is_fast(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively: CUDA GPUs with
    bf16 support, CPUs with AVX512-BF16 or AMX (oneDNN). Elsewhere a bf16 product
    is emulated and was measured ~50-100x *slower* than fp32 (AVX2 CPU here)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def check_device(precision: str, device: torch.device) -> None:
    """A clear error for a precision this device cannot run fast."""
    if precision == "bf16" and not bf16_is_fast(device):
        what = "GPU" if device.type == "cuda" else f"device ({device})" if device.type != "cpu" else "CPU"
        raise ValueError(
            f"precision 'bf16' needs native bfloat16 matrix products, which this {what} lacks "
            f"(CPUs: AVX512-BF16 or AMX; torch reports {torch.backends.cpu.get_cpu_capability()}); "
            "emulated, it runs many times slower than fp32. Use precision = 'fp32'."
        )


def mm(x: Tensor, w: Tensor) -> Tensor:
    return torch.mm(x, w) if x.dtype == w.dtype else torch.mm(x.to(w.dtype), w).float()


def bmm(x: Tensor, w: Tensor) -> Tensor:
    return torch.bmm(x, w) if x.dtype == w.dtype else torch.bmm(x.to(w.dtype), w).float()


def addmm(b: Tensor, x: Tensor, w: Tensor) -> Tensor:
    return torch.addmm(b, x, w) if x.dtype == w.dtype else torch.mm(x.to(w.dtype), w).float() + b


def baddbmm(b: Tensor, x: Tensor, w: Tensor) -> Tensor:
    return torch.baddbmm(b, x, w) if x.dtype == w.dtype else torch.bmm(x.to(w.dtype), w).float() + b


def weight_matrices(module: nn.Module):
    """The parameters stored in the precision's dtype: every parameter of 2 or more dims."""
    return [p for p in module.parameters() if p.dim() >= 2]


def apply_precision(module: nn.Module, precision: str) -> nn.Module:
    """Convert ``module``'s weight matrices in place to ``precision`` (biases stay float32)."""
    dtype = DTYPES[check_precision(precision)]
    with torch.no_grad():
        for p in weight_matrices(module):
            if p.dtype != dtype:
                p.data = p.data.to(dtype)
    return module


def precision_of(module: nn.Module) -> str:
    dtypes = {p.dtype for p in weight_matrices(module)}
    return "bf16" if torch.bfloat16 in dtypes else "fp32"
