"""Inference precision of the biLM: the exact float32 path, bfloat16 weights, or int8 products.

``"fp32"`` (the default) is the exact path that matches bilm-tf. ``"bf16"``
stores every weight matrix (char embedding, convolutions, highway, projections,
LSTM) in bfloat16, halving the weights' memory; matrix products run in
bfloat16 (float32 accumulation where the BLAS offers it, as oneDNN does on CPUs
with AVX512-BF16 / AMX, and on GPUs), while biases, gates, the LSTM state and
the outputs stay float32. For inference only (no autograd through bf16 weights).

``"int8"`` (CPU only) runs the LSTM's products (input, recurrent,
projection) as dynamically quantized int8 products (fbgemm, or oneDNN where
:func:`use_onednn` is on and it is faster: :func:`int8_prepack`, :func:`_set_int8`; weights
int8 per output channel, each input quantized per call, int32 accumulation,
float32 out), with two exceptions that keep it within 0.1 of fp32 downstream
(:func:`int8_linear`): the input products scale each input row to its own
maximum first, and the projections run in bfloat16 where the CPU has native
bf16 products (:func:`int8_bf16_applies`; their bf16 values are kept on any
CPU). The token layer (character convolutions, highway, projection)
stays float32: the token cache makes it rare at inference, and its error
would reach every layer. The float32 weights are kept
beside the packed int8 ones, so saving a pipeline and going back to
``"fp32"`` (exact again) need nothing else; the weights' memory grows by
about a third instead of shrinking. ``keep_float=False`` frees them (the LSTM's
weights then take under a third of their float32 memory: a quarter in int8,
the projections also in bf16), for a biLM that is
only run, never moved or set back (``embed``); such a biLM is saved with its
int8 weights (:func:`int8_state`, :func:`load_int8_state`: a pipeline from
``python -m spacy_elmo quantize``).

The helpers below are what the modules call for their products: with weights
and inputs of one dtype they are the plain torch ops (the exact path is
unchanged); with bfloat16 weights they cast the input to bfloat16 and the
product back to float32.
"""
import functools
import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

PRECISIONS: Tuple[str, ...] = ("fp32", "bf16", "int8")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32}
# the attribute of a weight Parameter that holds its packed int8 form (one per stacked direction)
INT8 = "_int8_packed"
# the attribute of a module whose int8 weights' float32 values were freed (keep_float=False)
FLOAT_FREED = "_int8_float_freed"
# the attribute of an int8 weight of INT8_BF16_WEIGHTS that holds its values in bfloat16,
# ``(k, in, out)``, whose product then runs in bf16 instead of int8 (see int8_linear)
INT8_BF16 = "_int8_bf16_values"
# the attribute that marks an int8 weight of INT8_ROW_SCALED_WEIGHTS (see int8_linear)
INT8_ROW_SCALED = "_int8_row_scaled"


def check_precision(value: object) -> str:
    if value not in PRECISIONS:
        raise ValueError(
            f"Invalid precision {value!r}: use one of {', '.join(repr(p) for p in PRECISIONS)} "
            "('fp32' is the exact path; 'bf16' halves the weights' memory, 'int8' quantizes the "
            "large products on CPU; both for inference)."
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
    if precision == "int8" and device.type != "cpu":
        raise ValueError(
            f"precision 'int8' (dynamic int8 products) runs on CPU only, not on {device}. "
            "On a GPU use precision = 'bf16' (or 'fp32')."
        )
    if precision == "int8" and not int8_engine():
        raise ValueError("precision 'int8' needs torch's quantized CPU kernels (fbgemm, x86 or onednn), which this torch lacks. Use 'fp32'.")
    if precision == "bf16" and not bf16_is_fast(device):
        what = "GPU" if device.type == "cuda" else f"device ({device})" if device.type != "cpu" else "CPU"
        raise ValueError(
            f"precision 'bf16' needs native bfloat16 matrix products, which this {what} lacks "
            f"(CPUs: AVX512-BF16 or AMX; torch reports {torch.backends.cpu.get_cpu_capability()}); "
            "emulated, it runs many times slower than fp32. Use precision = 'fp32'."
        )


def int8_engine() -> bool:
    return any(e in torch.backends.quantized.supported_engines for e in ("x86", "fbgemm", "onednn"))


def _int8(x: Tensor, w: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``x @ W (+ bias)`` through the int8 weight ``w`` (:func:`int8_linear`): ``(..., in)`` -> ``(..., out)``;
    stacked weights (two packs) take ``x``'s (and a stacked ``bias``'s) first dim as the stack."""
    k = len(getattr(w, INT8))
    if k == 1:
        return int8_linear(x, w, 0, bias=bias)
    return torch.stack([int8_linear(x[d], w, d, bias=None if bias is None else bias[d]) for d in range(k)])


# What the int8 products do beyond a plain dynamic int8 product, measured on the shipped
# recipe's pipelines (bilm-cpu-3h-bf16, mix "all": the full-set one and five seeds at 1,000
# sentences, EWT/UNER test). Plain int8 moved NER F by -0.26 and -0.14 on two of the six; the
# layers' mean |diff| from fp32 on 500 EWT dev sentences was 0.0135 / 0.0186 (LSTM layers 1 / 2).
# * The input products' rows are token vectors (layer 0) or LSTM outputs of very different
#   sizes, quantized with one scale per 256-row chunk: scaling each row to its own maximum
#   first (and the product back) took the mean |diff| to 0.0096 / 0.0141 for ~2% of the speed.
# * The projections' error is their weights' (4,096 inputs per output channel under one int8
#   scale): int8 weights with a second int8 term for the remainder still left 0.0044 / 0.0089
#   (with the row scaling), bfloat16 weights and inputs 0.0031 / 0.0061 (bf16 mode: 0.0021 /
#   0.0032) for ~7% of the speed. With both, no TAG / UAS / LAS / NER F score of the six
#   pipelines moved by more than 0.08 (README, "Speed").
INT8_ROW_SCALED_WEIGHTS = ("w_input",)
INT8_BF16_WEIGHTS = ("w_proj",)


def int8_bf16_applies() -> bool:
    """Whether ``"int8"`` runs the weights of :data:`INT8_BF16_WEIGHTS` in bfloat16: where the
    CPU multiplies bf16 natively through oneDNN (elsewhere a bf16 product is far slower than
    an int8 one, and those weights run in int8)."""
    return use_onednn() and _cpu_bf16_is_fast()


@functools.lru_cache(maxsize=None)
def _cpu_bf16_is_fast() -> bool:
    return bf16_is_fast(torch.device("cpu"))


def int8_linear(
    x: Tensor, w: Tensor, d: int = 0, *, bias: Optional[Tensor] = None, many_rows: bool = False, bf16: Optional[bool] = None
) -> Tensor:
    """``x @ w[d] (+ bias)`` as ``"int8"`` runs it, for an int8 weight ``w`` (``(k, in, out)`` or ``(in, out)``
    with its packs attached: :func:`apply_precision`): ``(..., in)`` -> ``(..., out)`` float32.

    * weights with bfloat16 values (:data:`INT8_BF16`), where :func:`int8_bf16_applies`
      (``bf16``: its answer, if the caller has it): oneDNN's bf16 product on them;
    * weights marked :data:`INT8_ROW_SCALED`: each row of ``x`` divided by its own largest
      magnitude, the dynamic int8 product, each output row multiplied back;
    * otherwise the dynamic int8 product (``many_rows``: on the oneDNN packs of
      :data:`INT8_MANY_ROWS` where the weight has them).
    """
    shape = x.shape
    x = x.reshape(-1, shape[-1])
    values = getattr(w, INT8_BF16, None)
    if values is not None and (int8_bf16_applies() if bf16 is None else bf16):
        y = onednn_linear(x.to(torch.bfloat16), onednn_packed(values)[d]).float()
    else:
        packs = getattr(w, INT8_MANY_ROWS, None) if many_rows else None
        packed = (packs or getattr(w, INT8))[d]
        x = x.contiguous()
        if getattr(w, INT8_ROW_SCALED, False):
            scale = x.abs().amax(dim=1, keepdim=True).clamp_(min=torch.finfo(x.dtype).tiny)
            y = torch.ops.quantized.linear_dynamic(x / scale, packed)
            if bias is None:
                y.mul_(scale)
            else:  # one pass over the output instead of two
                y = torch.addcmul(bias, y, scale, out=y)
                bias = None
        else:
            y = torch.ops.quantized.linear_dynamic(x, packed)
    if bias is not None:
        y.add_(bias)
    return y.reshape(*shape[:-1], y.shape[-1])


def onednn_applies(x: Tensor, w: Tensor) -> bool:
    """A float32 product on the CPU, without autograd, of a weight that is a module's own
    parameter (its packed form is cached on it), where :func:`use_onednn` is on."""
    return (
        isinstance(w, nn.Parameter)
        and x.dtype == torch.float32
        and w.dtype == torch.float32
        and x.device.type == "cpu"
        and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
        and use_onednn()
    )


def mm(x: Tensor, w: Tensor) -> Tensor:
    if hasattr(w, INT8):
        return _int8(x, w)
    if w.dim() == 2 and onednn_applies(x, w):
        return onednn_linear(x.contiguous(), onednn_packed(w)[0])
    return torch.mm(x, w) if x.dtype == w.dtype else torch.mm(x.to(w.dtype), w).float()


def bmm(x: Tensor, w: Tensor) -> Tensor:
    if hasattr(w, INT8):
        return _int8(x, w)
    return torch.bmm(x, w) if x.dtype == w.dtype else torch.bmm(x.to(w.dtype), w).float()


def addmm(b: Tensor, x: Tensor, w: Tensor) -> Tensor:
    if w.dim() == 2 and b.dtype == torch.float32 and not hasattr(w, INT8) and onednn_applies(x, w):
        return onednn_linear(x.contiguous(), onednn_packed(w)[0], b)
    if hasattr(w, INT8):
        return _int8(x, w, b)
    if x.dtype == w.dtype:
        return torch.addmm(b, x, w)
    return mm(x, w) + b


def baddbmm(b: Tensor, x: Tensor, w: Tensor) -> Tensor:
    if hasattr(w, INT8):
        return _int8(x, w, b)
    if x.dtype == w.dtype:
        return torch.baddbmm(b, x, w)
    return bmm(x, w) + b


# The attribute of a float32 weight that holds its oneDNN-packed form (see onednn_linear)
ONEDNN = "_onednn_packed"
_ONEDNN_CHOICE: Dict[str, bool] = {}


def use_onednn() -> bool:
    """Whether the inference loop runs its float32 and bfloat16 products through oneDNN with packed weights.

    ``SPACY_ELMO_ONEDNN=1`` / ``0`` forces it on / off; by default it is on
    where torch reports AVX512 (here a 2-core AMD EPYC: oneDNN's fp32 products
    ran 2-4x torch's default BLAS, 325-496 against 99-216 GFLOP/s on the LSTM's
    shapes; ``benchmarks/bench_bilm.py --gemm`` prints both) and off elsewhere
    (AVX2 CPUs: not measured to pay). The products differ from the default
    BLAS's in summation order only (a few float32 ulps; tested against the
    exact loop). Costs a second, packed copy of the LSTM's weights.
    """
    import os

    setting = os.environ.get("SPACY_ELMO_ONEDNN", "auto")
    if setting not in _ONEDNN_CHOICE:
        available = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        if setting == "auto":
            available = available and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
        _ONEDNN_CHOICE[setting] = bool(available) and setting != "0"
    return _ONEDNN_CHOICE[setting]


def onednn_packed(w: Tensor) -> List[Tensor]:
    """oneDNN-packed forms of ``w`` (``(in, out)`` or stacked ``(k, in, out)``), one per
    stacked matrix, cached on ``w`` and packed again whenever ``w`` changed (its
    storage or its in-place version counter). Dropped before pickling (:func:`drop_onednn`)."""

    def pack(weight: Tensor) -> List[Tensor]:
        stack = weight.reshape(-1, weight.shape[-2], weight.shape[-1])
        return [torch.ops.mkldnn._reorder_linear_weight(m.t().contiguous(), None) for m in stack]

    return _cached_pack(w, "in_out", pack)


def onednn_packed_out_in(w: Tensor) -> Tensor:
    """The oneDNN-packed form of ``w`` read as one ``(out, in)`` matrix (its first dim out, the
    rest flattened: a convolution's ``(out, channels, width)`` weight), cached on ``w`` as
    :func:`onednn_packed` caches its packs (and dropped with them)."""
    return _cached_pack(w, "out_in", lambda weight: torch.ops.mkldnn._reorder_linear_weight(weight.reshape(weight.shape[0], -1).contiguous(), None))


def _cached_pack(w: Tensor, layout: str, pack: Callable[[Tensor], Any]) -> Any:
    """``pack(w.detach())``, cached on ``w`` under :data:`ONEDNN` until ``w`` changes."""
    key = (layout, w.data_ptr(), w._version, tuple(w.shape))
    cached = getattr(w, ONEDNN, None)
    if cached is None or cached[0] != key:
        packed = pack(w.detach())
        setattr(w, ONEDNN, (key, packed))
        return packed
    return cached[1]


class LayerProducts(NamedTuple):
    """One LSTM layer's products, per direction ``d``, for the direct inference loop; float32 in and out.

    input(d, x): ``(rows, in)`` -> ``(rows, 4C)``, ``x @ W_input[d]`` plus the gate bias;
    gates(d, h, xp): ``(n, P)``, ``(n, 4C)`` -> ``(n, 4C)``, ``h @ W_hidden[d] + xp`` (a new tensor);
    proj(d, m): ``(n, C)`` -> ``(n, P)``, ``m @ W_proj[d]`` (a new tensor).
    """

    input: Callable[[int, Tensor], Tensor]
    gates: Callable[[int, Tensor, Tensor], Tensor]
    proj: Callable[[int, Tensor], Tensor]


def layer_products(w_input: Tensor, w_hidden: Tensor, w_proj: Tensor, bias: Tensor, x: Tensor) -> Optional[LayerProducts]:
    """The packed per-direction products of a layer's stacked weights (``(2, in, out)``; ``bias``
    ``(2, 1, 4C)``) for inference on ``x``'s device, or ``None`` where the stacked loop serves better.

    * int8 weights: their products as :func:`int8_linear` runs them (the stacked loop's, one
      direction each);
    * float32 or bfloat16 weights on a CPU where :func:`use_onednn` is on: oneDNN's
      products on weights packed once (:func:`onednn_packed`); bfloat16 ones take the
      input in bfloat16 and give float32 (bias and gates added in float32).
      Measured at 32 x 512 x 16,384 (one thread): float32 2.8 ms against torch.mm's 9.4;
      bfloat16 1.3 ms against 1.6 (column-major) and without the stacked copies.
    """
    weights = (w_input, w_hidden, w_proj)
    biases = [bias[d, 0].contiguous() for d in range(2)]
    if all(hasattr(w, INT8) for w in weights):
        bf16 = int8_bf16_applies()
        return LayerProducts(
            lambda d, x: int8_linear(x, w_input, d, bias=biases[d]),
            # oneDNN's kernels for steps with many rows
            lambda d, h, xp: int8_linear(h, w_hidden, d, many_rows=h.shape[0] >= ONEDNN_INT8_MIN_ROWS).add_(xp),
            lambda d, m: int8_linear(m, w_proj, d, bf16=bf16),
        )
    dtypes = {w.dtype for w in weights}
    if x.device.type != "cpu" or not use_onednn() or dtypes not in ({torch.float32}, {torch.bfloat16}):
        return None
    if dtypes == {torch.bfloat16} and not bf16_is_fast(x.device):
        return None
    p_in, p_hidden, p_proj = (onednn_packed(w) for w in weights)
    if dtypes == {torch.float32}:
        return LayerProducts(
            lambda d, x: onednn_linear(x, p_in[d], biases[d]),
            lambda d, h, xp: onednn_linear(h, p_hidden[d]).add_(xp),
            lambda d, m: onednn_linear(m, p_proj[d]),
        )
    low = torch.bfloat16
    return LayerProducts(
        lambda d, x: torch.add(onednn_linear(x.to(low), p_in[d]), biases[d]),
        lambda d, h, xp: torch.add(onednn_linear(h.to(low), p_hidden[d]), xp),
        lambda d, m: onednn_linear(m.to(low), p_proj[d]).float(),
    )


def drop_onednn(module: nn.Module) -> None:
    """Forget the packed oneDNN copies of ``module``'s weights (opaque tensors, which cannot be pickled)."""
    for p in module.parameters():
        for t in (p, getattr(p, INT8_BF16, None)):
            if t is not None and hasattr(t, ONEDNN):
                delattr(t, ONEDNN)


def onednn_linear(x: Tensor, packed: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``x @ W (+ bias)`` through a oneDNN-packed ``W`` (:func:`onednn_packed`): ``(n, in)`` -> ``(n, out)``."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def int8_weights(module: nn.Module) -> List[nn.Parameter]:
    """The weights ``"int8"`` quantizes: the LSTM's (not the token layer's)."""
    return [p for _, p in named_int8_weights(module)]


def named_int8_weights(module: nn.Module) -> List[Tuple[str, nn.Parameter]]:
    names = ("w_input", "w_hidden", "w_proj")
    return [(name, p) for name, p in module.named_parameters() if name.rsplit(".", 1)[-1] in names and ".layers." in f".{name}"]


# The int8 weights packed for oneDNN's kernels where use_onednn() is on: the input products'
# which run 256-row chunks. Dynamic int8 products, (rows x 512) @ (512 x 16,384), 2 threads,
# AVX512 EPYC: fbgemm 1.9 / 3.5 / 23.4 ms at 160 / 256 / 512 rows, oneDNN 1.5 / 2.3 / 13.8;
# at 1-32 rows fbgemm is faster (0.06 against 0.08 ms at one row). The projections keep
# fbgemm's: the component (original shape, 500 EWT sentences) ran 3,126-3,203 / 4,021-4,226
# tok/s (pass 1 / 2) with the input weights on oneDNN, and 2,836-2,860 / 3,218-3,632 with
# none; one 10-token sentence 11.3-11.6 and 12.4-12.6 ms.
ONEDNN_INT8_WEIGHTS = ("w_input",)
# The int8 weights packed for both: fbgemm's for steps with few rows, oneDNN's (the attribute
# INT8_MANY_ROWS) for steps with at least ONEDNN_INT8_MIN_ROWS rows. The recurrent products
# run one row per live sentence, from a batch's first steps (hundreds of rows on short
# sentences) down to a few: (rows x 512) @ (512 x 16,384), 2 threads, fbgemm against oneDNN:
# 0.33 / 0.35 ms at 32 rows, 0.76 / 0.64 at 64, 1.77 / 1.24 at 128, 4.19 / 2.84 at 294;
# (rows x 512) @ (512 x 4,096): 0.18 / 0.18 at 64, 0.79 / 0.69 at 294.
ONEDNN_INT8_ROW_SPLIT = ("w_hidden",)
ONEDNN_INT8_MIN_ROWS = 64
# the attribute of a weight Parameter that holds its int8 form packed for oneDNN's kernels,
# used for products of at least ONEDNN_INT8_MIN_ROWS rows (ONEDNN_INT8_ROW_SPLIT)
INT8_MANY_ROWS = "_int8_packed_many_rows"


def int8_prepack(q: Tensor, name: str = "", engine: Optional[str] = None):
    """The packed form of a per-channel quantized ``(out, in)`` weight for ``linear_dynamic``:
    for the kernels of ``engine`` if given, else for oneDNN's if ``name`` (the parameter's) is
    one of :data:`ONEDNN_INT8_WEIGHTS` and :func:`use_onednn` is on, else for torch's default
    engine (the same quantization: the products agree to float32 rounding). A packed weight
    runs on the kernels it was packed for, whatever the engine set later.
    """
    current = torch.backends.quantized.engine
    onednn = name.rsplit(".", 1)[-1] in ONEDNN_INT8_WEIGHTS and use_onednn()
    wanted = engine or ("onednn" if onednn and "onednn" in torch.backends.quantized.supported_engines else current)
    if wanted == current:
        return torch.ops.quantized.linear_prepack(q, None)
    torch.backends.quantized.engine = wanted
    try:
        return torch.ops.quantized.linear_prepack(q, None)
    finally:
        torch.backends.quantized.engine = current


def _quantize(w: Tensor) -> List[Tensor]:
    """Per-output-channel symmetric int8 forms ``(out, in)`` of ``(in, out)`` or stacked ``(k, in, out)`` weights."""
    stack = w.detach().float().reshape(-1, w.shape[-2], w.shape[-1])
    out = []
    with warnings.catch_warnings():  # the quantized tensor API is what fbgemm's packing takes
        warnings.simplefilter("ignore", UserWarning)
        for m in stack:
            wt = m.t().contiguous()  # (out, in)
            scales = (wt.abs().amax(dim=1).clamp(min=1e-12) / 127.0).double()
            out.append(torch.quantize_per_channel(wt, scales, torch.zeros(wt.shape[0], dtype=torch.long), 0, torch.qint8))
    return out


def _pack(w: Tensor, name: str = "") -> List:
    """Per-output-channel symmetric int8 packing of ``(in, out)`` or stacked ``(k, in, out)`` weights."""
    return [int8_prepack(q, name) for q in _quantize(w)]


def _set_int8(p: nn.Parameter, name: str, quantized: List[Tensor], values: Optional[Tensor] = None) -> None:
    """Attach the packed forms of ``p``'s int8 values (``(out, in)`` per stacked matrix):
    :data:`INT8`, and :data:`INT8_MANY_ROWS` for the weights of :data:`ONEDNN_INT8_ROW_SPLIT`
    where :func:`use_onednn` is on; :data:`INT8_ROW_SCALED` on those of
    :data:`INT8_ROW_SCALED_WEIGHTS`; and ``values`` (``p``'s float values, any float dtype,
    ``(k, in, out)`` or ``p``'s shape) in bfloat16 as :data:`INT8_BF16` on those of
    :data:`INT8_BF16_WEIGHTS`, kept on any CPU (they run where :func:`int8_bf16_applies`,
    and are saved with the int8 values: :func:`int8_state`)."""
    setattr(p, INT8, [int8_prepack(q, name) for q in quantized])
    short = name.rsplit(".", 1)[-1]
    for attr in (INT8_ROW_SCALED, INT8_BF16):
        if hasattr(p, attr):
            delattr(p, attr)
    if short in INT8_ROW_SCALED_WEIGHTS:
        setattr(p, INT8_ROW_SCALED, True)
    if values is not None and short in INT8_BF16_WEIGHTS:
        bf16 = values.detach().to(torch.bfloat16).reshape(len(quantized), *values.shape[-2:])
        setattr(p, INT8_BF16, bf16.contiguous())
    if short in ONEDNN_INT8_ROW_SPLIT and use_onednn() and "onednn" in torch.backends.quantized.supported_engines:
        setattr(p, INT8_MANY_ROWS, [int8_prepack(q, name, "onednn") for q in quantized])
    elif hasattr(p, INT8_MANY_ROWS):
        delattr(p, INT8_MANY_ROWS)


def _drop_int8(module: nn.Module) -> None:
    """Forget the packed forms (int8 with their bf16 values, and oneDNN float32) of ``module``'s weights."""
    for p in module.parameters():
        for attr in (INT8, INT8_MANY_ROWS, INT8_ROW_SCALED, INT8_BF16, ONEDNN):
            if hasattr(p, attr):
                delattr(p, attr)


def weight_matrices(module: nn.Module):
    """The parameters stored in the precision's dtype: every parameter of 2 or more dims."""
    return [p for p in module.parameters() if p.dim() >= 2]


def apply_precision(module: nn.Module, precision: str, *, keep_float: bool = True) -> nn.Module:
    """Convert ``module``'s weight matrices in place to ``precision`` (biases stay float32).

    ``keep_float=False`` (int8 only) frees the float32 values of the weights
    int8 packs: the module can then only run (see :func:`check_float_kept`).
    """
    dtype = DTYPES[check_precision(precision)]
    _drop_int8(module)
    with torch.no_grad():
        for p in weight_matrices(module):
            if p.dtype != dtype:
                p.data = p.data.to(dtype)
        for p in int8_weights(module):  # the LSTM's (in, out) matrices: layout by precision, same values
            p.data = _column_major(p.data) if precision == "bf16" else p.data.contiguous()
        if precision == "int8":
            for name, p in named_int8_weights(module):
                _set_int8(p, name, _quantize(p), p.detach())
                if not keep_float:
                    p.data = p.data.new_empty(0)
            if not keep_float:
                setattr(module, FLOAT_FREED, True)
    return module


def _column_major(w: Tensor) -> Tensor:
    """``w`` ``(..., in, out)`` with the same shape and values, its memory laid out as ``(..., out, in)``.

    bf16 products with the weight as a transposed operand ran 1.1-1.8x faster
    here (oneDNN, AVX512-BF16: 1.73 -> 1.00 ms for one row x (512, 16384), 10.2
    -> 9.2 ms for 256 rows); float32 products are fastest row-major, so every
    other precision stores the weights contiguous."""
    return w.transpose(-1, -2).contiguous().transpose(-1, -2)


def int8_state(module: nn.Module) -> Dict[str, Tensor]:
    """The int8 form of a module's int8 weights, to save one whose float32 values were freed:
    per weight ``NAME.int8`` (``(k, out, in)`` int8 values, ``k`` stacked directions, 1 for
    a plain matrix) and ``NAME.int8_scale`` (``(k, out)`` float64 per-channel scales); for
    the weights of :data:`INT8_BF16_WEIGHTS` also ``NAME.bf16`` (``(k, in, out)`` bfloat16:
    their :data:`INT8_BF16` values), so that a CPU with native bf16 runs them so whichever
    CPU saved them."""
    out = {}
    for name, p in module.named_parameters():
        packs = getattr(p, INT8, None)
        if packs is None:
            continue
        weights = [torch.ops.quantized.linear_unpack(q)[0] for q in packs]
        out[f"{name}.int8"] = torch.stack([w.int_repr() for w in weights])
        out[f"{name}.int8_scale"] = torch.stack([w.q_per_channel_scales().double() for w in weights])
        bf16 = getattr(p, INT8_BF16, None)
        if bf16 is not None:
            out[f"{name}.bf16"] = bf16.detach().contiguous()  # a new tensor: without the cached oneDNN pack
    return out


def load_int8_state(module: nn.Module, state: Dict[str, Tensor]) -> None:
    """Pack ``module``'s int8 weights from :func:`int8_state`'s tensors and free their float32
    values (``keep_float=False``): the products are those of the saved module, bit for bit."""
    pack_int8_state(module, state)
    for _, p in named_int8_weights(module):
        p.data = p.data.new_empty(0)
    setattr(module, FLOAT_FREED, True)


def pack_int8_state(module: nn.Module, state: Dict[str, Tensor]) -> None:
    """Pack ``module``'s int8 weights from :func:`int8_state`'s tensors, each for the kernels
    :func:`_set_int8` picks, and leave their float32 values as they are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name, p in named_int8_weights(module):
            values, scales = state[f"{name}.int8"], state[f"{name}.int8_scale"]
            if p.numel():  # float32 values at hand (freed ones are empty): the shapes must agree
                expected = (p.shape[0], p.shape[2], p.shape[1]) if p.dim() == 3 else (1, p.shape[1], p.shape[0])
                if tuple(values.shape) != expected or tuple(scales.shape) != expected[:2]:
                    raise ValueError(f"int8 weights of {name}: shape {tuple(values.shape)}, expected {expected}")
            bf16 = state.get(f"{name}.bf16")  # absent from pipelines quantized before it existed
            k_in_out = (values.shape[0], values.shape[2], values.shape[1])
            if bf16 is not None and tuple(bf16.shape) != k_in_out:
                raise ValueError(f"bf16 weights of {name}: shape {tuple(bf16.shape)}, expected {k_in_out}")
            quantized = []
            for v, sc in zip(values, scales):
                zeros = torch.zeros(v.shape[0], dtype=torch.long)
                quantized.append(torch._make_per_channel_quantized_tensor(v.to(torch.int8).contiguous(), sc.double(), zeros, 0))
            _set_int8(p, name, quantized, bf16)


def check_float_kept(module: nn.Module, action: str) -> None:
    """A clear error when ``module``'s int8 weights have no float32 values left to ``action`` with."""
    if getattr(module, FLOAT_FREED, False):
        from ..errors import Errors

        raise ValueError(Errors.E081.format(action=action))


def repack_int8(module: nn.Module) -> None:
    """After ``module.to(...)``: pack the int8 weights again from the moved ones (on CPU),
    or go back to fp32 elsewhere (int8 runs on CPU only)."""
    if precision_of(module) == "int8":
        device = next(module.parameters()).device
        apply_precision(module, "int8" if device.type == "cpu" else "fp32")


def precision_of(module: nn.Module) -> str:
    if any(hasattr(p, INT8) for p in module.parameters()):
        return "int8"
    dtypes = {p.dtype for p in weight_matrices(module)}
    return "bf16" if torch.bfloat16 in dtypes else "fp32"
