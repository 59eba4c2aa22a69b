"""One ELMo mix per downstream component (the paper's task-specific weights,
AllenNLP's ``num_output_representations``).

``TaskMix(tok2vec, elmo_layers, tok2vec_width, ...)``:
``Model[List[Doc], List[Floats2d]]``. ``tok2vec`` (normally a
``spacy.Tok2VecListener.v1`` on the ``elmo`` component) delivers per doc a
``(n_tokens, elmo_layers * dim + tok2vec_width)`` array: every biLM layer,
layer 0 first (``ElmoTok2Vec`` with ``mix = "all"``), then the shared
tok2vec's vector (``ElmoWithTok2Vec.v2`` with ``combine = "concat"``). This
layer gives the component its own scalar mix of the biLM layers, its own
dropout on the mixed vector and its own zero-initialised projection added to
the tok2vec part (``combine = "residual"`` per component)::

    [h_0 .. h_L-1 | t] -> t + Linear(dropout(gamma * sum_l softmax(w)_l h_l))

With ``tok2vec_width = 0`` there is no tok2vec part and the output is the
mixed ELMo vector itself (``dim`` wide). The untrained layer returns exactly
``t``, as ``ElmoWithTok2Vec.v2``'s ``"residual"`` does.
"""
from typing import Callable, List, Optional, Tuple

from thinc.api import Linear, Model, with_array, zero_init
from thinc.types import Floats2d

from ..errors import Errors
from .feature_dropout import FeatureDropout
from .mix import LayerMix

InT = list  # List[Doc]
OutT = List[Floats2d]


def TaskMix(
    tok2vec: Model,
    elmo_layers: int = 3,
    tok2vec_width: int = 0,
    mix: str = "scalar",
    dropout: float = 0.5,
    mix_l2: float = 0.0,
) -> Model[InT, OutT]:
    """dims: ``nO`` (output width: ``tok2vec_width``, or the biLM's ``dim`` when it is 0)."""
    for what, value, low in (("elmo_layers", elmo_layers, 1), ("tok2vec_width", tok2vec_width, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(Errors.E047.format(what=what, value=value, why=f"it must be an integer >= {low}"))
    if mix == "all":
        raise ValueError(Errors.E047.format(what="mix", value=mix, why='a task mix combines the layers: use "scalar", "average" or "top"'))
    layer_mix = LayerMix(mix, l2=mix_l2)
    feature_dropout = FeatureDropout(dropout)
    layers = [tok2vec, layer_mix, feature_dropout]
    projection = None
    if tok2vec_width:
        projection = with_array(Linear(nO=tok2vec_width, init_W=zero_init))
        layers.append(projection)
    return Model(
        "elmo_task_mix",
        forward,
        init=init,
        layers=layers,
        dims={"nO": tok2vec_width or None},
        refs={"tok2vec": tok2vec, "mix": layer_mix, "dropout": feature_dropout, "projection": projection},
        attrs={"elmo_layers": elmo_layers, "tok2vec_width": tok2vec_width},
    )


def elmo_dim(model: Model, upstream_width: int) -> int:
    """The width of one biLM layer, from the upstream's width; a clear error if it does not divide."""
    n_layers, t_width = model.attrs["elmo_layers"], model.attrs["tok2vec_width"]
    elmo_width = upstream_width - t_width
    if elmo_width <= 0 or elmo_width % n_layers:
        raise ValueError(
            Errors.E047.format(
                what="elmo_layers / tok2vec_width",
                value=(n_layers, t_width),
                why=(
                    f"the upstream gives {upstream_width} values per token, which is not elmo_layers x (biLM layer width) "
                    f"+ tok2vec_width; the upstream must be ElmoWithTok2Vec.v2 with combine = \"concat\" around "
                    f'ElmoTok2Vec.v2 with mix = "all" (a 2-layer biLM has elmo_layers = 3), and tok2vec_width the width of its tok2vec'
                ),
            )
        )
    return elmo_width // n_layers


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=X)
    upstream_width = tok2vec.get_dim("nO")
    dim = elmo_dim(model, upstream_width)
    layer_mix = model.get_ref("mix")
    layer_mix.set_dim("nL", model.attrs["elmo_layers"], force=True)
    layer_mix.set_dim("nI", dim, force=True)
    layer_mix.set_dim("nO", dim, force=True)
    layer_mix.initialize()
    projection = model.maybe_get_ref("projection")
    if projection is not None:
        projection.layers[0].set_dim("nI", dim, force=True)
        projection.set_dim("nI", dim, force=True)
        projection.initialize()
    else:
        model.set_dim("nO", dim, force=True)


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    tok2vec, layer_mix, feature_dropout = model.layers[:3]
    projection = model.maybe_get_ref("projection")
    n_layers, t_width = model.attrs["elmo_layers"], model.attrs["tok2vec_width"]
    xp = model.ops.xp
    X, bp_tok2vec = tok2vec(docs, is_train)
    dim = layer_mix.get_dim("nI")
    e_width = n_layers * dim
    # (n, L * d) -> (L, n, d): the layout LayerMix takes
    elmo = [xp.ascontiguousarray(x[:, :e_width].reshape(x.shape[0], n_layers, dim).transpose(1, 0, 2)) for x in X]
    mixed, bp_mix = layer_mix(elmo, is_train)
    dropped, bp_dropout = feature_dropout(mixed, is_train)
    if projection is None:
        Y, bp_projection = dropped, None
    else:
        added, bp_projection = projection(dropped, is_train)
        Y = [x[:, e_width:] + a for x, a in zip(X, added)]

    def backprop(dY: OutT) -> InT:
        d_mixed = bp_dropout(bp_projection(dY) if bp_projection is not None else dY)
        d_elmo = bp_mix(d_mixed)
        dX = []
        for dy, de in zip(dY, d_elmo):
            d_layers = de.transpose(1, 0, 2).reshape(de.shape[1], e_width)
            dX.append(xp.ascontiguousarray(xp.concatenate([d_layers, dy], axis=1) if projection is not None else d_layers, dtype="float32"))
        return bp_tok2vec(dX)

    return Y, backprop
