"""The biLM as a Thinc layer: token strings in, every layer's vectors out.

``Model[List[List[str]], List[Floats3d]]``: one token list per sequence in, one
``(n_layers + 1, n_tokens, 2 * projection_dim)`` array per sequence out.

The torch module lives in Thinc's ``PyTorchWrapper_v3`` (mixed precision, grad
scaler, device handling through Thinc/torch) with conversion and serialization
callbacks. The weights arrive at ``initialize`` (see :func:`set_bilm`); until
then a placeholder module raises a clear error. Serialized pipelines hold the
options and the tensors (read back with ``torch.load(weights_only=True)``).

Frozen (the default), the biLM runs without autograd even in training, its
backprop callback returns nothing (no graph is built through it), and its
outputs for training spans are cached across epochs.
"""
import os
from io import BytesIO
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from thinc.api import (
    ArgsKwargs,
    Model,
    PyTorchGradScaler,
    get_torch_default_device,
    torch2xp,
    xp2torch,
)
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from thinc.types import Floats3d

from ..bilm import BiLM, batch_to_ids
from ..bilm.precision import FLOAT_FREED, check_precision, int8_state, load_int8_state, named_int8_weights
from ..errors import Errors
from .bilm_shim import FINE_TUNE, BiLMShim
from .feature_cache import FeatureCache

InT = List[List[str]]
OutT = List[Floats3d]


def _one_thread_in_forked_children() -> None:
    # nlp.pipe(n_process=N) forks: OpenMP's thread pool does not survive a fork
    # (torch would hang in the child's first parallel op), and N processes
    # share the cores anyway, so each child computes with one thread.
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_in_forked_children)


class UnloadedBiLM(torch.nn.Module):
    """Stands in for the biLM until weights are attached at initialize."""

    def __init__(self, component: str = "elmo") -> None:
        super().__init__()
        self.component = component

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(Errors.E040.format(name=self.component))


def ElmoBiLM(
    *,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[Dict[str, Any]] = None,
    fine_tune: str = "none",
    lr_scale: float = 0.1,
    cache_mb: float = 1024,
    cache_float16: bool = False,
    token_cache_mb: float = 256,
    precision: str = "fp32",
) -> Model[InT, OutT]:
    """dims: ``nL`` (layers out: n_layers + 1) and ``nO`` (2 * projection_dim), set by :func:`set_bilm`.

    fine_tune: ``"none"`` (frozen), ``"top"`` (the top LSTM layer), ``"lstm"``
        (all LSTM layers) or ``"all"`` (the char CNN too).
    lr_scale: learning-rate factor for the fine-tuned biLM parameters.
    cache_mb / cache_float16: bound and precision of the frozen-feature cache
        used in training (0 turns it off); see :mod:`.feature_cache`.
    token_cache_mb: bound of the exact cache of context-independent token
        vectors kept across batches and calls at prediction (0 turns it off;
        unused while the char CNN is fine-tuned); see ``bilm/token_cache.py``.
    precision: ``"fp32"`` (exact, the default), ``"bf16"`` (weight matrices in
        bfloat16: half the memory, faster products where the device has native
        bf16) or ``"int8"`` (the LSTM's products as dynamic int8 products, its
        projections in bf16 where the CPU has native bf16; CPU only); frozen biLM
        only; see ``bilm/precision.py``.
    """
    if fine_tune not in FINE_TUNE:
        raise ValueError(Errors.E047.format(what="fine_tune", value=fine_tune, why=f"use one of {', '.join(FINE_TUNE)}"))
    if not lr_scale > 0:
        raise ValueError(Errors.E047.format(what="lr_scale", value=lr_scale, why="it must be positive"))
    if not cache_mb >= 0:
        raise ValueError(Errors.E047.format(what="cache_mb", value=cache_mb, why="it must be >= 0 (0 turns the cache off)"))
    if isinstance(token_cache_mb, bool) or not isinstance(token_cache_mb, (int, float)) or not token_cache_mb >= 0:
        raise ValueError(Errors.E047.format(what="token_cache_mb", value=token_cache_mb, why="it must be a number of MiB >= 0 (0 turns the cache off)"))
    check_precision(precision)
    if precision != "fp32" and fine_tune != "none":
        raise ValueError(Errors.E047.format(what="precision", value=precision, why=f'a {precision} biLM is for inference: use fine_tune = "none", or precision = "fp32" to fine-tune'))
    grad_scaler_config = dict(grad_scaler_config or {})
    if mixed_precision and "enabled" not in grad_scaler_config:
        grad_scaler_config["enabled"] = True
    # Thinc's PyTorchWrapper_v3, with the biLM's own shim (fine-tuning state and learning-rate scale)
    wrapper = Model(
        "pytorch",
        pytorch_forward,
        attrs={"convert_inputs": convert_inputs, "convert_outputs": convert_outputs},
        shims=[
            BiLMShim(
                UnloadedBiLM(),
                fine_tune=fine_tune,
                lr_scale=lr_scale,
                mixed_precision=mixed_precision,
                grad_scaler=PyTorchGradScaler(**grad_scaler_config),
                serialize_model=serialize_bilm,
                deserialize_model=deserialize_bilm,
            )
        ],
        dims={"nI": None, "nO": None},
    )
    return Model(
        "elmo_bilm",
        forward,
        layers=[wrapper],
        dims={"nL": None, "nO": None},
        attrs={
            "fine_tune": fine_tune,
            "lr_scale": lr_scale,
            "feature_cache": FeatureCache(int(cache_mb * 2**20), cache_float16),
            "token_cache_mb": float(token_cache_mb),
            "precision": precision,
        },
    )


def forward(model: Model[InT, OutT], X: InT, is_train: bool) -> Tuple[OutT, Callable]:
    wrapper = model.layers[0]
    sync_bilm(model)
    if is_train and model.attrs["fine_tune"] != "none":
        return wrapper(X, is_train=True)
    if not is_train:
        return wrapper.predict(X), _no_backprop
    # Frozen training: the features of a span never change, so they are cached.
    cache: FeatureCache = model.attrs["feature_cache"]
    keys = [tuple(tokens) for tokens in X]
    Y: List[Optional[Floats3d]] = [cache.get(key) for key in keys]
    missing = [i for i, y in enumerate(Y) if y is None]
    if missing:
        for i, y in zip(missing, wrapper.predict([X[i] for i in missing])):
            Y[i] = y
            cache.put(keys[i], y)
    return Y, _no_backprop


def _no_backprop(dY: OutT) -> InT:
    return []


def sync_bilm(model: Model) -> None:
    """Bring the biLM in line with the layer's settings: its ``precision``, and
    its token cache (``token_cache_mb``), taken away while the char CNN is
    fine-tuned (its vectors change with every update)."""
    bilm = get_torch_bilm(model)
    if not isinstance(bilm, BiLM):
        return
    precision = model.attrs.get("precision", "fp32")
    if getattr(bilm, FLOAT_FREED, False):  # an int8-only biLM (spacy_elmo quantize) runs in int8 only
        if precision != "int8":
            raise ValueError(Errors.E082.format(what=f"run with precision {precision!r}"))
        bilm.set_precision("int8", keep_float=False)
    else:
        bilm.set_precision(precision)
    size = model.attrs.get("token_cache_mb", 0.0) if model.attrs["fine_tune"] != "all" else 0.0
    cache = bilm.token_cache
    if size and (cache is None or cache.max_bytes != int(size * 2**20)):
        bilm.set_token_cache(size)
    elif not size and cache is not None:
        bilm.token_cache = None


def token_cache_of(model: Model):
    """The :class:`~spacy_elmo.bilm.token_cache.TokenCache` of an :func:`ElmoBiLM` layer, or ``None``."""
    bilm = get_torch_bilm(model)
    return bilm.token_cache if isinstance(bilm, BiLM) else None


def get_torch_bilm(model: Model) -> torch.nn.Module:
    """The torch module inside an :func:`ElmoBiLM` layer."""
    return model.layers[0].shims[0]._model


def set_bilm(model: Model, bilm: BiLM) -> None:
    """Attach loaded weights to an :func:`ElmoBiLM` layer (on Thinc's current device)."""
    shim = model.layers[0].shims[0]
    bilm = bilm.to(get_torch_default_device())
    shim._model = bilm
    set_trainable(model)
    model.set_dim("nL", bilm.config.n_output_layers, force=True)
    model.set_dim("nO", bilm.config.output_dim, force=True)


def set_trainable(model: Model, fine_tune: Optional[str] = None) -> None:
    """Set ``requires_grad`` of the biLM parameters from ``fine_tune`` (default: the layer's setting)."""
    if fine_tune is not None:
        if fine_tune not in FINE_TUNE:
            raise ValueError(Errors.E047.format(what="fine_tune", value=fine_tune, why=f"use one of {', '.join(FINE_TUNE)}"))
        model.attrs["fine_tune"] = fine_tune
    shim = model.layers[0].shims[0]
    shim.fine_tune = model.attrs["fine_tune"]
    shim.apply_trainable()
    model.attrs["feature_cache"].clear()
    sync_bilm(model)


def convert_inputs(model: Model, X: InT, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    shim = model.shims[0]
    bilm = shim._model
    ids = (bilm.batch_to_ids(X) if isinstance(bilm, BiLM) else batch_to_ids(X)).to(shim.device)
    return ArgsKwargs(args=(ids,), kwargs={}), lambda d_inputs: []


def convert_outputs(model: Model, X_Ytorch: Tuple[InT, Any], is_train: bool) -> Tuple[OutT, Callable]:
    X, output = X_Ytorch
    layers = output.layers
    # one conversion for the batch, each sentence a view of it (the mix concatenates them)
    whole = torch2xp(layers.detach().float().contiguous())
    Y = [whole[:, i, : len(tokens)] for i, tokens in enumerate(X)]

    def backprop(dY: OutT) -> ArgsKwargs:
        d_layers = torch.zeros_like(layers)
        for i, d in enumerate(dY):
            d_layers[:, i, : d.shape[1]] = xp2torch(d, device=layers.device).to(layers.dtype)
        return ArgsKwargs(args=((layers,),), kwargs={"grad_tensors": (d_layers,)})

    return Y, backprop


def serialize_bilm(module: torch.nn.Module) -> bytes:
    """Options and tensors of the biLM (empty before weights are attached). A biLM
    whose int8 weights' float32 values were freed (``spacy_elmo quantize``) saves
    those weights in int8 (values and per-channel scales, and the projections in bf16:
    :func:`~..bilm.precision.int8_state`): under a third of the bytes."""
    if not isinstance(module, BiLM):
        return b""
    buffer = BytesIO()
    if getattr(module, FLOAT_FREED, False):
        freed = {name for name, _ in named_int8_weights(module)}
        # the plain state dict (BiLM.state_dict refuses a module without its float32 weights), less those
        state = {name: t.detach().cpu() for name, t in torch.nn.Module.state_dict(module).items() if name not in freed}
        torch.save({**module.spec(), "state": state, "int8": int8_state(module)}, buffer)
    else:
        state = {name: tensor.detach().cpu() for name, tensor in module.state_dict().items()}
        torch.save({**module.spec(), "state": state}, buffer)
    return buffer.getvalue()


def deserialize_bilm(module: torch.nn.Module, data: bytes, device: torch.device) -> torch.nn.Module:
    """Rebuild the biLM from :func:`serialize_bilm`'s bytes; never unpickles code."""
    if not data:
        return module
    saved = torch.load(BytesIO(data), map_location="cpu", weights_only=True)
    bilm = BiLM.from_spec(saved, source="<serialized pipeline>")
    if "int8" in saved:  # int8 only: runs on the CPU, as it was saved
        if torch.device(device).type != "cpu":
            raise ValueError(Errors.E082.format(what=f"run on {device}"))
        missing, unexpected = bilm.load_state_dict(saved["state"], strict=False)
        expected = {name for name, _ in named_int8_weights(bilm)}
        fix = "quantize the pipeline it came from again (python -m spacy_elmo quantize INPUT OUTPUT)."
        if set(missing) != expected or unexpected:
            raise ValueError(f"The pipeline's int8 biLM is corrupt (missing {sorted(set(missing) ^ expected)}, unexpected {unexpected}): {fix}")
        try:
            load_int8_state(bilm, saved["int8"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"The pipeline's int8 biLM is corrupt ({error}): {fix}") from error
        return bilm.requires_grad_(False).eval()
    bilm.load_state_dict(saved["state"])
    # frozen until the layer's "trainable" attribute says otherwise (see set_trainable)
    return bilm.to(device).requires_grad_(False).eval()
