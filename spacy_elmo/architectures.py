"""Registered architectures (names in setup.cfg's ``spacy_architectures`` entry points).

All are ``Model[List[Doc], List[Floats2d]]``, one ``(len(doc), width)`` array per doc.

``spacy-elmo.ElmoTok2Vec.v2`` (``.v1``: without ``dropout`` / ``mix_l2``), ELMo alone::

    docs -> get_spans -> [biLM -> layer mix] per batch of spans -> per-doc arrays -> dropout -> (projection)

``spacy-elmo.ElmoWithTok2Vec.v2``, ELMo beside the baseline's own token
representation (any tok2vec, e.g. spaCy's hash embeddings + CNN)::

    combine = "residual":  tok2vec + Linear(width, zero-initialised)(ELMo)
    combine = "maxout":    [ELMo | tok2vec] -> Maxout(width)    (= ElmoWithTok2Vec.v1)
    combine = "concat":    [ELMo | tok2vec]                     (no bottleneck)
    combine = "input":     encode(embed + Linear(zero-initialised)(ELMo))  (tok2vec = embed >> encode)
    combine = "both":      encode(embed + Linear(ELMo)) + Linear(ELMo)     (both projections zero-initialised)

``"residual"`` and ``"input"`` start as exactly the baseline (the projection
of ELMo starts at zero), so training can only add what ELMo brings;
``"input"`` adds ELMo before the tok2vec's context encoder (the CNN), as the
ELMo paper adds it at the input of the task model, so the encoder composes it
with the neighbouring tokens.

The biLM weights are not part of the config: they are attached at
``initialize`` (:func:`attach_bilm`) and saved inside the pipeline.
"""
from typing import Any, Callable, Dict, List, Optional, Tuple

from spacy.tokens import Doc
from thinc.api import Linear, Maxout, Model, chain, concatenate, with_array, zero_init
from thinc.types import Floats2d

from . import registry  # noqa: F401  (adds span_getters / model_loaders)
from .bilm import BiLM
from .errors import Errors
from .layers.bilm_wrapper import ElmoBiLM, set_bilm
from .layers.feature_dropout import FeatureDropout
from .layers.mix import MIXES, LayerMix, output_width, set_mix_dims
from .layers.spans import SpanGetter, sent_or_window_spans_v1
from .layers.task_mix import TaskMix
from .layers.with_spans import with_spans

InT = List[Doc]
OutT = List[Floats2d]


def elmo_tok2vec_v1(
    width: Optional[int] = None,
    mix: str = "scalar",
    project: bool = False,
    get_spans: Optional[SpanGetter] = None,
    max_batch_items: int = 4096,
    fine_tune: str = "none",
    lr_scale: float = 0.1,
    cache_mb: float = 1024,
    cache_float16: bool = False,
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
) -> Model[InT, OutT]:
    """ELMo vectors for every token.

    width: output width; ``None`` for the natural width of the weights
        (``2 * projection_dim``, times the number of layers for ``mix = "all"``).
        Listeners need a number: set it, and write ``${components.elmo.model.width}``.
    mix: ``"scalar"`` (learned, starts as the average), ``"average"``, ``"top"``,
        ``"all"`` (the layers concatenated: a projection after it, such as
        ``ElmoWithTok2Vec.v2``'s, learns a mix of its own for each output).
    project: learn a linear projection from the natural width to ``width``.
    get_spans: how docs are cut for the biLM (default: sentences when set, else
        windows of 128 tokens every 96).
    max_batch_items: padded tokens per biLM batch (bounds memory).
    fine_tune: ``"none"`` (frozen biLM, the default), ``"top"`` (top LSTM layer),
        ``"lstm"`` (all LSTM layers) or ``"all"`` (char CNN too).
    lr_scale: learning-rate factor for fine-tuned biLM parameters.
    cache_mb / cache_float16: frozen biLM outputs of training spans are cached
        across epochs up to ``cache_mb`` MiB (0: off), optionally in float16.
    mixed_precision / grad_scaler_config: passed to Thinc's PyTorchWrapper_v3.
    """
    return _elmo_tok2vec(
        width, mix, project, get_spans, max_batch_items, fine_tune, lr_scale, cache_mb, cache_float16, mixed_precision, grad_scaler_config
    )


def elmo_tok2vec_v2(
    width: Optional[int] = None,
    mix: str = "scalar",
    project: bool = False,
    dropout: float = 0.5,
    mix_l2: float = 0.0,
    get_spans: Optional[SpanGetter] = None,
    max_batch_items: int = 4096,
    fine_tune: str = "none",
    lr_scale: float = 0.1,
    cache_mb: float = 1024,
    cache_float16: bool = False,
    token_cache_mb: float = 256,
    precision: str = "fp32",
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = {},
) -> Model[InT, OutT]:
    """``spacy-elmo.ElmoTok2Vec.v1`` with the paper's regularisers, the token cache and a precision.

    dropout: dropout rate on the mixed ELMo vectors in training (the paper: 0.5),
        its own rate, not ``[training] dropout``.
    mix_l2: L2 penalty pulling the scalar-mix weights towards the average
        (the paper's lambda; 0 turns it off; ``mix = "scalar"`` only).
    token_cache_mb: MiB of context-independent token vectors kept across
        batches, docs and calls at prediction (exact; 0 turns it off).
    precision: ``"fp32"`` (the exact path, default) or ``"bf16"`` (weight
        matrices in bfloat16: half the weights' memory; frozen biLM only).
    Other arguments: see ``spacy-elmo.ElmoTok2Vec.v1``.
    """
    return _elmo_tok2vec(
        width, mix, project, get_spans, max_batch_items, fine_tune, lr_scale, cache_mb, cache_float16, mixed_precision, grad_scaler_config,
        dropout=dropout, mix_l2=mix_l2, token_cache_mb=token_cache_mb, precision=precision,
    )


def _elmo_tok2vec(
    width, mix, project, get_spans, max_batch_items, fine_tune, lr_scale, cache_mb, cache_float16, mixed_precision, grad_scaler_config,
    *, dropout: Optional[float] = None, mix_l2: float = 0.0, token_cache_mb: float = 256, precision: str = "fp32",
) -> Model[InT, OutT]:
    # dropout None: the v1 layout (no dropout node), so v1 pipelines keep loading.
    if mix not in MIXES:
        raise ValueError(Errors.E045.format(mix=mix))
    if width is not None and (not isinstance(width, int) or isinstance(width, bool) or width < 1):
        raise ValueError(Errors.E047.format(what="width", value=width, why="it must be a positive integer (or null for the weights' own width)"))
    if project and width is None:
        raise ValueError(Errors.E047.format(what="width", value=width, why="project = true needs a width to project to"))
    bilm = ElmoBiLM(
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
        fine_tune=fine_tune,
        lr_scale=lr_scale,
        cache_mb=cache_mb,
        cache_float16=cache_float16,
        token_cache_mb=token_cache_mb,
        precision=precision,
    )
    layer_mix = LayerMix(mix, l2=mix_l2)
    spans_model = with_spans(get_spans or sent_or_window_spans_v1(), chain(bilm, layer_mix), max_batch_items)
    layers: List[Model] = [spans_model]
    if dropout is not None:
        layers.append(FeatureDropout(dropout))
    projection = None
    if project:
        projection = with_array(Linear(nO=width))
        layers.append(projection)
    model: Model[InT, OutT] = Model(
        "elmo_tok2vec",
        forward,
        init=init,
        layers=layers,
        dims={"nO": width},
        refs={"bilm": bilm, "mix": layer_mix, "spans": spans_model, "projection": projection},
        attrs={"mix": mix, "project": project, "width": width, "dropout": dropout or 0.0, "mix_l2": mix_l2},
    )
    return model


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    Y, backprops = docs, []
    for layer in model.layers:
        Y, bp = layer(Y, is_train)
        backprops.append(bp)

    def backprop(dY: OutT) -> InT:
        for bp in reversed(backprops):
            dY = bp(dY)
        return []

    return Y, backprop


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    bilm = model.get_ref("bilm")
    if bilm.get_dim("nL") is None:
        raise ValueError(Errors.E040.format(name="elmo"))
    for layer in model.layers:
        layer.initialize()


def natural_width(model: Model, bilm: BiLM) -> int:
    return output_width(model.attrs["mix"], bilm.config.n_output_layers, bilm.config.output_dim)


def attach_bilm(model: Model[InT, OutT], bilm: BiLM, *, name: str = "elmo", source: str = "the weights") -> None:
    """Put ``bilm`` into an ElmoTok2Vec model and set every dim from it; checks ``width``."""
    natural = natural_width(model, bilm)
    width = model.attrs["width"]
    if width is not None and width != natural and not model.attrs["project"]:
        raise ValueError(Errors.E046.format(name=name, width=width, source=source, natural=natural, mix=model.attrs["mix"]))
    set_bilm(model.get_ref("bilm"), bilm)
    set_mix_dims(model.get_ref("mix"), bilm.config.n_output_layers, bilm.config.output_dim)
    model.get_ref("spans").set_dim("nO", natural, force=True)
    projection = model.maybe_get_ref("projection")
    if projection is not None:
        linear = projection.layers[0]
        linear.set_dim("nI", natural, force=True)
        projection.set_dim("nI", natural, force=True)
    model.set_dim("nO", width if width is not None else natural, force=True)


def elmo_with_tok2vec_v1(elmo: Model[InT, OutT], tok2vec: Model[InT, OutT], width: int, maxout_pieces: int = 3) -> Model[InT, OutT]:
    """ELMo (``elmo``, an ElmoTok2Vec) concatenated with another token
    representation (``tok2vec``), combined by a layer-normalised maxout to ``width``.

    With ``tok2vec`` the baseline's own tok2vec and ``width`` its width, the
    downstream components are exactly the baseline's: a fair comparison.

    elmo: the ELMo part, a ``spacy-elmo.ElmoTok2Vec`` model.
    tok2vec: the other token representation (e.g. ``spacy.Tok2Vec.v2`` with hash embeddings).
    width: output width.
    maxout_pieces: pieces of the maxout that combines the two.
    """
    if not isinstance(width, int) or width < 1:
        raise ValueError(Errors.E047.format(what="width", value=width, why="it must be a positive integer"))
    combine = with_array(Maxout(nO=width, nP=maxout_pieces, normalize=True))
    model: Model[InT, OutT] = Model(
        "elmo_with_tok2vec",
        forward,
        init=init_with_tok2vec,
        layers=[concatenate(elmo, tok2vec), combine],
        dims={"nO": width},
        refs={"elmo": elmo, "tok2vec": tok2vec, "combine": combine},
    )
    return model


COMBINES = ("residual", "maxout", "concat", "input", "both")


def elmo_with_tok2vec_v2(
    elmo: Model[InT, OutT], tok2vec: Model[InT, OutT], width: int, combine: str = "residual", maxout_pieces: int = 3
) -> Model[InT, OutT]:
    """ELMo (``elmo``, an ElmoTok2Vec) beside another token representation
    (``tok2vec``, e.g. the baseline's own hash-embedding CNN), ``width`` wide.

    elmo: the ELMo part, a ``spacy-elmo.ElmoTok2Vec`` model.
    tok2vec: the other token representation (e.g. ``spacy.Tok2Vec.v2`` with hash embeddings).
    width: output width.
    maxout_pieces: pieces of the maxout (``combine = "maxout"`` only).
    combine: ``"residual"``: ``tok2vec(docs) + Linear(ELMo)``, the linear layer
        starting at zero, so the untrained model is the baseline and ELMo is
        added only as far as training finds it useful (``tok2vec`` must be
        ``width`` wide); ``"maxout"``: the two concatenated, then a
        layer-normalised maxout to ``width`` (ElmoWithTok2Vec.v1); ``"concat"``:
        the two concatenated, no bottleneck (``width`` must be the sum of both);
        ``"input"``: ``encode(embed(docs) + Linear(ELMo))``, ELMo added (through
        a zero-initialised projection) to the tok2vec's context-independent
        embeddings, before its context encoder (``tok2vec`` must be built as
        ``embed >> encode`` with those refs, as ``spacy.Tok2Vec.v2`` is);
        ``"both"``: ``"input"`` and ``"residual"`` together,
        ``encode(embed(docs) + Linear(ELMo)) + Linear(ELMo)``, two zero-initialised
        projections of the same ELMo vectors (the encoder composes ELMo with the
        neighbouring tokens, and the components also read it directly).
    """
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(Errors.E047.format(what="width", value=width, why="it must be a positive integer"))
    if combine not in COMBINES:
        raise ValueError(Errors.E047.format(what="combine", value=combine, why=f"use one of {', '.join(repr(c) for c in COMBINES)}"))
    if combine == "maxout":
        model = elmo_with_tok2vec_v1(elmo, tok2vec, width, maxout_pieces)
        model.attrs["combine"] = combine
        return model
    if combine == "concat":
        return Model(
            "elmo_with_tok2vec",
            forward,
            init=init_concat,
            layers=[concatenate(elmo, tok2vec)],
            dims={"nO": width},
            refs={"elmo": elmo, "tok2vec": tok2vec},
            attrs={"combine": combine},
        )
    projection = with_array(Linear(nO=width, init_W=zero_init))
    if combine in ("input", "both") and not (tok2vec.has_ref("embed") and tok2vec.has_ref("encode")):
        raise ValueError(
            Errors.E047.format(
                what="combine", value=combine, why='it needs a tok2vec built as embed >> encode (e.g. spacy.Tok2Vec.v2); use "residual" with this one'
            )
        )
    if combine == "both":
        output_projection = with_array(Linear(nO=width, init_W=zero_init))
        return Model(
            "elmo_with_tok2vec",
            forward_both,
            init=init_both,
            layers=[tok2vec, elmo, projection, output_projection],
            dims={"nO": width},
            refs={"elmo": elmo, "tok2vec": tok2vec, "projection": projection, "output_projection": output_projection},
            attrs={"combine": combine},
        )
    forward_fn, init_fn = (forward_input, init_input) if combine == "input" else (forward_residual, init_residual)
    return Model(
        "elmo_with_tok2vec",
        forward_fn,
        init=init_fn,
        layers=[tok2vec, chain(elmo, projection)],
        dims={"nO": width},
        refs={"elmo": elmo, "tok2vec": tok2vec, "projection": projection},
        attrs={"combine": combine},
    )


def forward_residual(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    base, elmo = model.layers
    Y_base, bp_base = base(docs, is_train)
    Y_elmo, bp_elmo = elmo(docs, is_train)
    Y = [a + b for a, b in zip(Y_base, Y_elmo)]

    def backprop(dY: OutT) -> InT:
        bp_base(dY)
        bp_elmo(dY)
        return []

    return Y, backprop


def forward_input(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    tok2vec, elmo = model.layers
    embed, encode = tok2vec.get_ref("embed"), tok2vec.get_ref("encode")
    X_embed, bp_embed = embed(docs, is_train)
    X_elmo, bp_elmo = elmo(docs, is_train)
    Y, bp_encode = encode([a + b for a, b in zip(X_embed, X_elmo)], is_train)

    def backprop(dY: OutT) -> InT:
        dX = bp_encode(dY)
        bp_embed(dX)
        bp_elmo(dX)
        return []

    return Y, backprop


def forward_both(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    tok2vec, elmo, projection, output_projection = model.layers
    embed, encode = tok2vec.get_ref("embed"), tok2vec.get_ref("encode")
    X_embed, bp_embed = embed(docs, is_train)
    E, bp_elmo = elmo(docs, is_train)
    E_input, bp_input = projection(E, is_train)
    E_output, bp_output = output_projection(E, is_train)
    H, bp_encode = encode([a + b for a, b in zip(X_embed, E_input)], is_train)
    Y = [a + b for a, b in zip(H, E_output)]

    def backprop(dY: OutT) -> InT:
        dX = bp_encode(dY)
        bp_embed(dX)
        bp_elmo([a + b for a, b in zip(bp_input(dX), bp_output(dY))])
        return []

    return Y, backprop


def _init_parts(model: Model[InT, OutT], X: Optional[InT]) -> Tuple[int, int]:
    elmo, tok2vec = model.get_ref("elmo"), model.get_ref("tok2vec")
    elmo.initialize()
    tok2vec.initialize(X=X)
    return elmo.get_dim("nO"), tok2vec.get_dim("nO")


def init_residual(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    n_elmo, n_tok2vec = _init_parts(model, X)
    width = model.get_dim("nO")
    if n_tok2vec != width:
        raise ValueError(
            Errors.E047.format(what="width", value=width, why=f'combine = "residual" adds ELMo to the tok2vec, which is {n_tok2vec} wide: set width = {n_tok2vec}')
        )
    _shape_projection(model.get_ref("projection"), n_elmo, width)


def init_input(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    n_elmo, n_tok2vec = _init_parts(model, X)
    width = model.get_dim("nO")
    n_embed = model.get_ref("tok2vec").get_ref("embed").get_dim("nO")
    combine = model.attrs["combine"]
    if n_tok2vec != width:
        raise ValueError(
            Errors.E047.format(what="width", value=width, why=f'combine = "{combine}" gives the tok2vec\'s output, which is {n_tok2vec} wide: set width = {n_tok2vec}')
        )
    _shape_projection(model.get_ref("projection"), n_elmo, n_embed)
    if model.has_ref("output_projection"):
        _shape_projection(model.get_ref("output_projection"), n_elmo, width)


init_both = init_input


def _shape_projection(projection: Model, n_in: int, n_out: int) -> None:
    """Set a ``with_array(Linear)`` projection's widths and initialise it (zeros)."""
    for node in (projection.layers[0], projection):
        node.set_dim("nO", n_out, force=True)
        node.set_dim("nI", n_in, force=True)
    projection.initialize()


def init_concat(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    n_elmo, n_tok2vec = _init_parts(model, X)
    width = model.get_dim("nO")
    if n_elmo + n_tok2vec != width:
        raise ValueError(
            Errors.E047.format(
                what="width", value=width, why=f'combine = "concat" gives ELMo ({n_elmo}) + tok2vec ({n_tok2vec}) = {n_elmo + n_tok2vec}: set width = {n_elmo + n_tok2vec}'
            )
        )
    model.layers[0].set_dim("nO", width, force=True)


def init_with_tok2vec(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    n_in = sum(_init_parts(model, X))
    for node in model.get_ref("combine").walk():
        if node.name == "maxout":
            node.set_dim("nI", n_in, force=True)
    model.get_ref("combine").initialize()
    model.layers[0].set_dim("nO", n_in, force=True)


def elmo_task_mix_v1(
    tok2vec: Model[InT, OutT],
    elmo_layers: int = 3,
    tok2vec_width: int = 0,
    mix: str = "scalar",
    dropout: float = 0.5,
    mix_l2: float = 0.0,
) -> Model[InT, OutT]:
    """One ELMo mix per downstream component: put it where the component's
    ``tok2vec`` goes, around a ``spacy.Tok2VecListener.v1`` on an ``elmo``
    component whose model is ``ElmoWithTok2Vec.v2`` with ``combine = "concat"``
    around ``ElmoTok2Vec.v2`` with ``mix = "all"`` (every biLM layer, then the
    tok2vec). The component gets its own scalar mix, dropout and
    zero-initialised projection added to the shared tok2vec vector.

    tok2vec: the listener on the ``elmo`` component (``spacy.Tok2VecListener.v1``).
    elmo_layers: biLM layers in the upstream's vectors (3 for a 2-layer biLM).
    tok2vec_width: width of the upstream's tok2vec part, which is also this
        layer's output width (0: no tok2vec part; the output is the mixed ELMo).
    mix: ``"scalar"`` (learned), ``"average"`` or ``"top"``.
    dropout / mix_l2: as in ``spacy-elmo.ElmoTok2Vec.v2``.
    """
    return TaskMix(tok2vec, elmo_layers, tok2vec_width, mix, dropout, mix_l2)


def find_elmo(model: Model) -> Model:
    """The ElmoTok2Vec node inside a component's model."""
    for node in model.walk():
        if node.name == "elmo_tok2vec":
            return node
    raise ValueError(
        Errors.E047.format(what="model", value=model.name, why="the elmo component needs an ElmoTok2Vec (spacy-elmo.ElmoTok2Vec.v1) in its model")
    )
