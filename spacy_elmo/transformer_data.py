"""spacy-transformers interop: every biLM layer on the doc, and its listener listening to ``elmo``.

* ``store_layers = true`` on the ``elmo`` pipe sets ``doc._.trf_data`` (the
  per-doc container of spacy-transformers, :class:`TransformerData`), aligned
  1:1 with the doc's tokens: ``model_output.last_hidden_state`` is
  ``(1, len(doc), width)``, the pipe's own output (``doc.tensor``), and
  ``model_output.hidden_states`` holds every biLM layer as ``(1, len(doc),
  2 * projection_dim)``: layer 0 the character-based token layer, then each
  LSTM layer (TF-Hub's ``word_emb``, ``lstm_outputs1``, ``lstm_outputs2``).
  Whitespace tokens get zeros, as in ``doc.tensor``. It costs one more pass of
  the biLM per batch (the token cache makes its character CNN free).
* spacy-transformers' ``spacy-transformers.TransformerListener.v1`` with
  ``upstream = "elmo"`` listens to the ``elmo`` pipe as it listens to a
  ``transformer``: in training it receives the pipe's output as
  :class:`TransformerData` and sends its gradient back (``grad_factor``,
  ``pooling`` work as usual: each token aligns to exactly one row); at
  inference it reads ``doc._.trf_data``, which the pipe then sets.

spacy-transformers is optional (``pip install spacy-elmo[transformers]``); it is
imported only when one of the two is used.
"""
import sys
from typing import Callable, List, Optional, Sequence

import numpy
from spacy.tokens import Doc
from thinc.api import Model, chain
from thinc.types import Floats2d

from .errors import Errors

LISTENER_MODULE = "spacy_transformers.layers.listener"


def spacy_transformers():
    """The ``spacy_transformers`` module, or a clear error naming how to install it."""
    try:
        import spacy_transformers
    except ImportError as err:
        raise ImportError(Errors.E080.format(err=err)) from None
    spacy_transformers.pipeline_component.install_extensions()  # Doc._.trf_data
    return spacy_transformers


def is_transformer_listener(node: Model) -> bool:
    """Whether ``node`` is spacy-transformers' ``TransformerListener`` (without importing it:
    a pipeline that uses the listener has imported it already)."""
    module = sys.modules.get(LISTENER_MODULE)
    return module is not None and isinstance(node, module.TransformerListener)


def layers_model(elmo: Model) -> Model[List[Doc], List[Floats2d]]:
    """A model sharing ``elmo``'s biLM and span settings that returns every layer,
    concatenated (``(len(doc), n_layers * dim)`` per doc) instead of the mix."""
    from .layers.mix import LayerMix, set_mix_dims
    from .layers.with_spans import with_spans
    from .layers.bilm_wrapper import get_torch_bilm

    spans = elmo.get_ref("spans")
    bilm = elmo.get_ref("bilm")
    config = get_torch_bilm(bilm).config
    mix = LayerMix("all")
    set_mix_dims(mix, config.n_output_layers, config.output_dim)
    model = with_spans(spans.attrs["get_spans"], chain(bilm, mix), spans.attrs["max_batch_items"])
    model.set_dim("nO", mix.get_dim("nO"))
    model.attrs["n_layers"] = config.n_output_layers
    return model


def to_trf_data(tokvecs: Floats2d, layers: Optional[Floats2d] = None, n_layers: int = 0):
    """One doc's :class:`TransformerData`: ``tokvecs`` ``(n, width)`` as the last hidden
    state and, given, ``layers`` ``(n, n_layers * dim)`` split into ``hidden_states``."""
    st = spacy_transformers()
    from thinc.types import Ragged
    from transformers.file_utils import ModelOutput

    n = tokvecs.shape[0]
    output = ModelOutput(last_hidden_state=tokvecs.reshape(1, n, tokvecs.shape[1]))
    if layers is not None:
        dim = layers.shape[1] // n_layers
        output["hidden_states"] = tuple(layers[:, i * dim : (i + 1) * dim].reshape(1, n, dim) for i in range(n_layers))
    align = Ragged(numpy.arange(n, dtype="i"), numpy.ones((n,), dtype="i"))
    return st.data_classes.TransformerData(wordpieces=st.data_classes.WordpieceBatch.zeros([n]), model_output=output, align=align)


class TransformerListenerFeed:
    """What the ``elmo`` pipe keeps in its listener map for a ``TransformerListener``:
    converts the pipe's ``(batch_id, tokvecs, backprop)`` into the listener's
    ``(batch_id, [TransformerData], backprop)`` and its gradients back."""

    def __init__(self, node: Model) -> None:
        self.node = node

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransformerListenerFeed) and other.node is self.node

    def __hash__(self) -> int:
        return id(self.node)

    def get_dim(self, name: str) -> Optional[int]:
        return self.node.get_dim(name) if self.node.has_dim(name) else None

    def set_width(self, width: int) -> None:
        if self.node.has_dim("nO") is None or self.node.get_dim("nO") != width:
            self.node.set_dim("nO", width, force=True)

    def receive(self, batch_id: int, tokvecs: Sequence[Floats2d], backprop: Callable) -> None:
        def backprop_trf(d_trf_datas) -> List[Doc]:
            return backprop([d.model_output.last_hidden_state.reshape(d.model_output.last_hidden_state.shape[1:]) for d in d_trf_datas])

        self.node.receive(batch_id, [to_trf_data(t) for t in tokvecs], backprop_trf)
