"""Dropout on the ELMo features, with a rate of its own.

``FeatureDropout(rate)``: ``Model[List[Floats2d], List[Floats2d]]``. Inverted
dropout (kept values scaled by ``1 / (1 - rate)``) in training, the identity
at prediction. The paper regularises ELMo with dropout 0.5 on its vectors,
far more than the 0.1 a spaCy config gives ``[training] dropout``; spaCy sets
that rate on every node with a ``dropout_rate`` attribute, so this layer keeps
its rate under another name (``feature_dropout``) and is not overwritten.
"""
from typing import Callable, List, Tuple

from thinc.api import Model
from thinc.types import Floats2d

from ..errors import Errors

InT = List[Floats2d]


def FeatureDropout(rate: float = 0.5) -> Model[InT, InT]:
    check_rate("dropout", rate)
    return Model("elmo_feature_dropout", forward, attrs={"feature_dropout": float(rate)})


def check_rate(what: str, rate: float) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(Errors.E047.format(what=what, value=rate, why="a dropout rate must be a number in [0, 1)"))


def forward(model: Model[InT, InT], X: InT, is_train: bool) -> Tuple[InT, Callable]:
    rate = model.attrs["feature_dropout"]
    if not is_train or rate == 0.0:
        return X, lambda dY: dY
    masks = [model.ops.get_dropout_mask(x.shape, rate) for x in X]
    Y = [x * mask for x, mask in zip(X, masks)]

    def backprop(dY: InT) -> InT:
        return [dy * mask for dy, mask in zip(dY, masks)]

    return Y, backprop
