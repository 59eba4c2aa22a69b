"""The AllenNLP / bilm-tf weight layout: ``options.json`` + HDF5, read and written.

Every published ELMo (small 2x1024_128, medium 2x2048_256, original 2x4096_512,
original-5.5B) uses this layout. Datasets, TensorFlow orientation ``y = x @ W + b``::

    char_embed                                   (261, char_dim)   raw ids 0..260, no padding row
    CNN/W_cnn_{i}, CNN/b_cnn_{i}                 (1, width, char_dim, n), (n,)
    CNN_high_{k}/W_carry, b_carry, W_transform, b_transform
    CNN_proj/W_proj, b_proj                      (n_filters, P), (P,)  [absent if n_filters == P]
    RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/W_0    (in + P, 4C)  rows: [input; h]; gates i, j, f, o
                                              .../B      (4C,)     without TF's forget_bias 1.0
                                              .../W_P_0  (C, P)

HDF5 holds arrays only: nothing is unpickled. Reading then writing gives the
same arrays bit for bit.
"""
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple, Union

import h5py
import numpy as np
import torch

from ..atomic_write import atomic_path
from ..errors import Errors, Warnings
from .chars import N_RAW_CHARS
from .config import BiLMConfig
from .model import BiLM

PathLike = Union[str, Path]


class WeightFileError(ValueError):
    """A weight file that is missing, not HDF5, or does not fit its options."""


def _lstm_prefix(direction: int, layer: int) -> str:
    return f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"


def expected_shapes(config: BiLMConfig) -> Dict[str, Tuple[int, ...]]:
    """Every dataset name of the layout with the shape ``config`` implies."""
    dim, P, C = config.char_embedding_dim, config.projection_dim, config.lstm_dim
    shapes: Dict[str, Tuple[int, ...]] = {"char_embed": (N_RAW_CHARS, dim)}
    for i, (width, n) in enumerate(config.filters):
        shapes[f"CNN/W_cnn_{i}"] = (1, width, dim, n)
        shapes[f"CNN/b_cnn_{i}"] = (n,)
    F = config.n_filters
    for k in range(config.n_highway):
        for name, shape in (("W_carry", (F, F)), ("b_carry", (F,)), ("W_transform", (F, F)), ("b_transform", (F,))):
            shapes[f"CNN_high_{k}/{name}"] = shape
    if F != P:
        shapes["CNN_proj/W_proj"] = (F, P)
        shapes["CNN_proj/b_proj"] = (P,)
    for d in range(2):
        for layer in range(config.n_layers):
            prefix = _lstm_prefix(d, layer)
            shapes[f"{prefix}/W_0"] = (P + P, 4 * C)
            shapes[f"{prefix}/B"] = (4 * C,)
            shapes[f"{prefix}/W_P_0"] = (C, P)
    return shapes


def _mapping(model: BiLM) -> Iterator[Tuple[str, Callable[[], torch.Tensor], Callable[[np.ndarray], None]]]:
    """(dataset name, get array from model, put array into model) for every dataset."""
    enc = model.token_encoder
    config = model.config

    def param(tensor: torch.Tensor, to_file: Callable, from_file: Callable):
        def get() -> torch.Tensor:
            return to_file(tensor.detach())

        def put(array: np.ndarray) -> None:
            with torch.no_grad():
                tensor.copy_(from_file(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))))

        return get, put

    same = (lambda t: t, lambda t: t)
    yield ("char_embed", *param(enc.char_embedding[1:], *same))
    for i, conv in enumerate(enc.convolutions):
        # file (1, width, in, out) <-> Conv1d (out, in, width)
        yield (f"CNN/W_cnn_{i}", *param(conv.weight, lambda t: t.permute(2, 1, 0).unsqueeze(0), lambda a: a[0].permute(2, 1, 0)))
        yield (f"CNN/b_cnn_{i}", *param(conv.bias, *same))
    for k, hw in enumerate(enc.highways):
        yield (f"CNN_high_{k}/W_carry", *param(hw.w_carry, *same))
        yield (f"CNN_high_{k}/b_carry", *param(hw.b_carry, *same))
        yield (f"CNN_high_{k}/W_transform", *param(hw.w_transform, *same))
        yield (f"CNN_high_{k}/b_transform", *param(hw.b_transform, *same))
    if enc.has_projection:
        yield ("CNN_proj/W_proj", *param(enc.w_proj, *same))
        yield ("CNN_proj/b_proj", *param(enc.b_proj, *same))
    P = config.projection_dim
    for index, layer in enumerate(model.lstm.layers):
        for d in range(2):
            prefix = _lstm_prefix(d, index)
            w_in, w_h = layer.w_input[d], layer.w_hidden[d]
            yield (
                f"{prefix}/W_0",
                lambda w_in=w_in, w_h=w_h: torch.cat([w_in.detach(), w_h.detach()], dim=0),
                lambda a, w_in=w_in, w_h=w_h: _put_split(a, w_in, w_h, P),
            )
            yield (f"{prefix}/B", *param(layer.bias[d], *same))
            yield (f"{prefix}/W_P_0", *param(layer.w_proj[d], *same))


def _put_split(array: np.ndarray, w_in: torch.Tensor, w_h: torch.Tensor, n_input: int) -> None:
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    with torch.no_grad():
        w_in.copy_(t[:n_input])
        w_h.copy_(t[n_input:])


def load_weights(model: BiLM, weights_path: PathLike) -> BiLM:
    """Copy the datasets of ``weights_path`` into ``model`` (checked against its config)."""
    path = Path(weights_path)
    _check_bilm_tf(model.config, path)
    if not path.is_file():
        raise WeightFileError(Errors.E010.format(path=path))
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise WeightFileError(Errors.E011.format(path=path, err=err)) from None
    config = model.config
    shapes = expected_shapes(config)
    options_summary = _summary(config)
    with h5:
        for name, _, put in _mapping(model):
            try:
                dataset = h5[name]
            except KeyError:
                raise WeightFileError(
                    Errors.E012.format(path=path, name=name, detail=options_summary)
                ) from None
            if not isinstance(dataset, h5py.Dataset):
                raise WeightFileError(Errors.E012.format(path=path, name=name, detail=options_summary))
            if tuple(dataset.shape) != shapes[name]:
                raise WeightFileError(
                    Errors.E013.format(
                        path=path, name=name, actual=tuple(dataset.shape), options=options_summary, expected=shapes[name]
                    )
                )
            if dataset.dtype.kind not in "fiu":
                raise WeightFileError(Errors.E015.format(path=path, name=name, what=f"is of type {dataset.dtype}, not numbers"))
            try:
                array = dataset[...]
            except OSError as err:
                raise WeightFileError(Errors.E011.format(path=path, err=err)) from None
            if not np.isfinite(array).all():
                bad = int(array.size - np.isfinite(array).sum())
                raise WeightFileError(Errors.E015.format(path=path, name=name, what=f"holds {bad:,} NaN or infinite values"))
            put(array)
        unused = _unused_datasets(h5, shapes)
    if unused:
        shown = ", ".join(unused[:5]) + (f" and {len(unused) - 5} more" if len(unused) > 5 else "")
        warnings.warn(Warnings.W001.format(path=path, names=shown), stacklevel=2)
    return model


def _unused_datasets(h5: h5py.File, shapes: Dict[str, Tuple[int, ...]]) -> list:
    names: list = []
    h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) and name not in shapes else None)
    return names


def _check_bilm_tf(config: BiLMConfig, path: Path) -> None:
    if config.token_ids != "bytes" or config.word_embedding_dim:
        raise WeightFileError(Errors.E077.format(what=f"char_cnn.ids = {config.token_ids!r}, for {path}"))


def _summary(config: BiLMConfig) -> str:
    return (
        f"lstm dim {config.lstm_dim}, projection_dim {config.projection_dim}, n_layers {config.n_layers}, "
        f"{len(config.filters)} char filters ({config.n_filters} total), n_highway {config.n_highway}"
    )


def save_weights(model: BiLM, weights_path: PathLike) -> None:
    """Write ``model`` in the bilm-tf layout (float32, same dataset names and shapes)."""
    path = Path(weights_path)
    _check_bilm_tf(model.config, path)
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
            for name, get, _ in _mapping(model):
                h5.create_dataset(name, data=get().to("cpu", torch.float32).contiguous().numpy())
    except OSError as err:
        raise WeightFileError(Errors.E014.format(path=path, err=err)) from None


def load_bilm(options_path: PathLike, weights_path: PathLike) -> BiLM:
    """Build a :class:`BiLM` from ``options.json`` and load ``weights.hdf5`` into it (eval mode)."""
    config = BiLMConfig.from_file(options_path)
    model = BiLM(config)
    load_weights(model, weights_path)
    return model.eval()


def save_bilm(model: BiLM, options_path: PathLike, weights_path: PathLike) -> None:
    """Write ``model`` as ``options.json`` + ``weights.hdf5``."""
    model.config.to_file(options_path)
    save_weights(model, weights_path)
