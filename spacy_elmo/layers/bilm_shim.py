"""The biLM's PyTorch shim: where fine-tuning lives.

``BiLMShim`` is Thinc's ``PyTorchShim`` plus the biLM's trainable state
(``fine_tune``: which parameters have ``requires_grad``) and its learning-rate
factor (``lr_scale``). Thinc's ``Model.finish_update`` hands every shim the
optimizer; this one scales the learning rate of the biLM's parameters, and
restores the trainable state whenever weights are read back (``from_bytes``,
``from_disk``). So whoever owns the model (the ``elmo`` pipe, a listener's
copy after ``nlp.replace_listeners``, a component updated as annotating)
fine-tunes the same way, with no help from the pipe.
"""
from typing import Any

import torch
from thinc.api import PyTorchShim

FINE_TUNE = ("none", "top", "lstm", "all")


class LRScaledOptimizer:
    """Calls a Thinc optimizer with its learning rate scaled by ``scale``."""

    def __init__(self, optimizer: Any, scale: float) -> None:
        self.optimizer = optimizer
        self.scale = scale

    def __call__(self, key: Any, weights: Any, gradient: Any, *, lr_scale: float = 1.0) -> Any:
        return self.optimizer(key, weights, gradient, lr_scale=lr_scale * self.scale)


class BiLMShim(PyTorchShim):
    def __init__(self, model: torch.nn.Module, *, fine_tune: str = "none", lr_scale: float = 0.1, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.fine_tune = fine_tune
        self.lr_scale = lr_scale
        self.apply_trainable()

    def apply_trainable(self) -> None:
        """Set ``requires_grad`` of the biLM's parameters from ``fine_tune``."""
        from ..bilm import BiLM

        if isinstance(self._model, BiLM):
            self._model.set_trainable(self.fine_tune)

    def finish_update(self, optimizer: Any) -> None:
        super().finish_update(LRScaledOptimizer(optimizer, self.lr_scale))

    def from_bytes(self, bytes_data: bytes) -> "BiLMShim":
        super().from_bytes(bytes_data)
        self.apply_trainable()
        return self
