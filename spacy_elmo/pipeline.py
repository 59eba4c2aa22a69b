"""The ``elmo`` pipeline component: ELMo vectors in ``Doc.tensor`` for every doc.

A subclass of spaCy's ``Tok2Vec`` pipe, so downstream components listen with
the stock ``spacy.Tok2VecListener.v1`` (``upstream = "elmo"``), and training,
``replace_listeners`` and frozen/annotating components behave as for
``tok2vec``. The biLM weights are read at ``initialize`` from ``source`` (or an
``[initialize.components.elmo.loader]``) and stored inside the pipeline.
"""
from itertools import islice
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

import numpy
from spacy.language import Language
from spacy.pipeline.tok2vec import Tok2Vec
from spacy.tokens import Doc, Span, Token
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from . import registry  # noqa: F401  (adds span_getters / model_loaders)
from .errors import Errors

# spaCy imports every factory's module whenever it creates a Language (even
# spacy.blank), so this module imports the biLM, the layers and the loaders
# only when a component is made or used.

DEFAULT_ELMO_MODEL = """
[model]
@architectures = "spacy-elmo.ElmoTok2Vec.v2"
width = null
mix = "scalar"
project = false
dropout = 0.5
mix_l2 = 0.0
max_batch_items = 4096
fine_tune = "none"
lr_scale = 0.1
cache_mb = 1024
cache_float16 = false
token_cache_mb = 256
precision = "fp32"
mixed_precision = false
grad_scaler_config = {}

[model.get_spans]
@span_getters = "spacy-elmo.sent_or_window_spans.v2"
window = 128
stride = 96
sentencize = true
"""


@Language.factory(
    "elmo",
    assigns=["doc.tensor"],
    default_config={
        "model": Config().from_str(DEFAULT_ELMO_MODEL)["model"],
        "source": "small",
        "set_vector_hooks": True,
        "threads": 0,
        "store_layers": False,
    },
)
def make_elmo(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    source: Union[str, List[str]],
    set_vector_hooks: bool,
    threads: int = 0,
    store_layers: bool = False,
) -> "ElmoComponent":
    """ELMo vectors for every token in ``doc.tensor``.

    model: the component's Thinc model, usually ``spacy-elmo.ElmoTok2Vec.v2``
        (or ``ElmoWithTok2Vec.v2`` around it).
    source: where :meth:`ElmoComponent.initialize` reads the biLM: a folder or
        ``.zip`` of any published layout (bilm-tf / AllenNLP, PubMed, NLPL,
        ELMoForManyLangs), ``[options, weights]`` paths, or a published name
        (small, medium, original, original-5.5b, pubmed, pt, efml-de, ...:
        ``python -m spacy_elmo models``; downloaded once into $SPACY_ELMO_CACHE).
    set_vector_hooks: make ``token.vector``, ``span.vector``, ``doc.vector`` and
        ``similarity`` use the ELMo vectors through user hooks, also when the vocab
        has static vectors (without them spaCy falls back to ``doc.tensor`` anyway,
        but warns W007 on similarity). Hooks are not serialized with a doc: docs
        from ``nlp.pipe(n_process=N)`` come back without them (the workers do not
        set them, so spaCy's W109 does not fire); ``install_vector_hooks(doc)``
        puts them back.
    threads: torch CPU threads while this component computes (0: torch's
        setting, one per core); 1 is fastest on a machine shared with other
        busy processes (see README, "Speed").
    store_layers: also set ``doc._.trf_data`` (spacy-transformers' per-doc
        container, aligned 1:1 with the tokens): the pipe's output and every biLM
        layer (``model_output.hidden_states``). Needs spacy-transformers; costs
        one more biLM pass. spacy-transformers' ``TransformerListener`` with
        ``upstream = "elmo"`` works with or without it.
    """
    return ElmoComponent(
        nlp.vocab, model, name, source=source, set_vector_hooks=set_vector_hooks, threads=threads, store_layers=store_layers
    )


class ElmoComponent(Tok2Vec):
    """Writes ELMo vectors, ``(len(doc), width)`` float32, to ``doc.tensor``."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats2d]],
        name: str = "elmo",
        *,
        source: Union[str, List[str]] = "small",
        set_vector_hooks: bool = True,
        threads: int = 0,
        store_layers: bool = False,
    ) -> None:
        from . import architectures  # noqa: F401  (the component's layers)
        from .bilm.threads import check_threads

        super().__init__(vocab, model, name)
        self.threads = check_threads(threads)
        if not source or not isinstance(source, (str, list, tuple)):
            raise ValueError(Errors.E047.format(what="source", value=source, why="give a folder, [options, weights] paths or a published name"))
        self.source = source
        self.set_vector_hooks = set_vector_hooks
        if not isinstance(store_layers, bool):
            raise ValueError(Errors.E047.format(what="store_layers", value=store_layers, why="it must be true or false"))
        self.store_layers = store_layers
        self._layers_model: Optional[Model] = None
        if store_layers:
            from .transformer_data import spacy_transformers

            spacy_transformers()  # a clear error now, not at the first doc

    @property
    def elmo_model(self) -> Model:
        """The ElmoTok2Vec node of this component's model."""
        from .architectures import find_elmo

        return find_elmo(self.model)

    @property
    def bilm_layer(self) -> Model:
        """The Thinc layer that holds the torch biLM."""
        return self.elmo_model.get_ref("bilm")

    @property
    def is_loaded(self) -> bool:
        from .bilm import BiLM
        from .layers.bilm_wrapper import get_torch_bilm

        return isinstance(get_torch_bilm(self.bilm_layer), BiLM)

    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable]] = None,
        *,
        nlp: Optional[Language] = None,
        loader: Optional[Callable[[], Any]] = None,
    ) -> None:
        """Read the biLM weights (from ``loader``, else from ``source``) and initialize the mix.

        loader: a ``registry.model_loaders`` function of no arguments returning a
            :class:`~spacy_elmo.bilm.BiLM`, e.g. ``spacy-elmo.BilmTfLoader.v1``
            or ``spacy-elmo.EFMLLoader.v1`` (default: ``spacy-elmo.ElmoLoader.v1``
            of ``source``, which takes every layout).
        """
        from .architectures import attach_bilm
        from .loaders import elmo_loader_v1

        if loader is None:
            loader = elmo_loader_v1(self.source)
        bilm = loader()
        described = getattr(loader, "source", self.source)
        attach_bilm(self.elmo_model, bilm, name=self.name, source=repr(described))
        self._layers_model = None
        sample = None
        if get_examples is not None:
            sample = [eg.x for eg in islice(get_examples(), 10)] or None
        self.model.initialize(X=sample)
        self._check_listeners()

    def find_listeners(self, component) -> None:
        """spaCy's ``Tok2VecListener``s (``upstream`` ``"*"`` or this pipe's name), and
        spacy-transformers' ``TransformerListener``s naming this pipe as ``upstream``."""
        super().find_listeners(component)
        from .transformer_data import TransformerListenerFeed, is_transformer_listener, spacy_transformers

        if isinstance(getattr(component, "model", None), Model):
            for node in component.model.walk():
                if is_transformer_listener(node) and node.upstream_name == self.name:
                    self.add_listener(TransformerListenerFeed(node), component.name)
                    spacy_transformers()  # registers Doc._.trf_data, which the listener reads

    def _feeds_trf_listeners(self) -> bool:
        from .transformer_data import TransformerListenerFeed

        return any(isinstance(listener, TransformerListenerFeed) for listener in self.listeners)

    # Inference settings of the biLM layer that the config rules, not the saved model:
    # Thinc restores a layer's attrs from disk, which would undo e.g.
    # spacy.load(path, config={"components": {"elmo": {"model": {"precision": "fp32"}}}}).
    RUNTIME_SETTINGS = ("precision", "token_cache_mb")

    def from_disk(self, path, *, exclude=tuple()):
        settings = self._runtime_settings()
        out = super().from_disk(path, exclude=exclude)
        self._restore_runtime_settings(settings)
        return out

    def from_bytes(self, bytes_data, *, exclude=tuple()):
        settings = self._runtime_settings()
        out = super().from_bytes(bytes_data, exclude=exclude)
        self._restore_runtime_settings(settings)
        return out

    def _runtime_settings(self) -> dict:
        attrs = self.bilm_layer.attrs
        return {k: attrs[k] for k in self.RUNTIME_SETTINGS if k in attrs}

    def _restore_runtime_settings(self, settings: dict) -> None:
        from .layers.bilm_wrapper import sync_bilm

        self.bilm_layer.attrs.update(settings)
        sync_bilm(self.bilm_layer)

    def _check_listeners(self) -> None:
        from .transformer_data import TransformerListenerFeed

        width = self.model.get_dim("nO")
        for component in self.listening_components:
            for listener in self.listener_map[component]:
                if isinstance(listener, TransformerListenerFeed):
                    listener.set_width(width)  # its pooling keeps the width
                    continue
                expected = listener.get_dim("nO")
                if expected != width:
                    raise ValueError(Errors.E048.format(name=self.name, listener=component, expected=expected, width=width))

    def predict(self, docs: Iterable[Doc]) -> List[Floats2d]:
        from .bilm.threads import torch_threads

        docs = list(docs)
        if not self.is_loaded:
            raise ValueError(Errors.E040.format(name=self.name))
        if not any(len(doc) for doc in docs):
            width = self.model.get_dim("nO")
            return [self.model.ops.alloc2f(0, width) for _ in docs]
        with torch_threads(self.threads):
            return self.model.predict(docs)

    def update(self, examples, *, drop: float = 0.0, sgd=None, losses=None):
        from .bilm.threads import torch_threads

        with torch_threads(self.threads):
            return super().update(examples, drop=drop, sgd=sgd, losses=losses)

    def set_annotations(self, docs: Sequence[Doc], tokvecses: Sequence[Floats2d]) -> None:
        # In a worker of nlp.pipe(n_process=N) every doc is serialized back to the main
        # process, which drops hooks (spaCy warns W109 per doc): do not set them there.
        hooks = self.set_vector_hooks and not in_spacy_worker()
        trf_datas = self._trf_datas(docs, tokvecses) if self.store_layers or self._feeds_trf_listeners() else None
        for i, (doc, tokvecs) in enumerate(zip(docs, tokvecses)):
            assert tokvecs.shape[0] == len(doc)
            doc.tensor = tokvecs
            if hooks:
                install_vector_hooks(doc)
            if trf_datas is not None:
                doc._.trf_data = trf_datas[i]

    def _trf_datas(self, docs: Sequence[Doc], tokvecses: Sequence[Floats2d]) -> list:
        """``doc._.trf_data`` for each doc (see :mod:`.transformer_data`)."""
        from .bilm.threads import torch_threads
        from .transformer_data import layers_model, to_trf_data

        ops = self.model.ops
        if not self.store_layers:
            return [to_trf_data(ops.to_numpy(t)) for t in tokvecses]
        if self._layers_model is None:
            self._layers_model = layers_model(self.elmo_model)
        n_layers = self._layers_model.attrs["n_layers"]
        width = self._layers_model.get_dim("nO")
        with torch_threads(self.threads):
            if any(len(doc) for doc in docs):
                layers = self._layers_model.predict(list(docs))
            else:
                layers = [ops.alloc2f(0, width) for _ in docs]
        return [to_trf_data(ops.to_numpy(t), ops.to_numpy(l), n_layers) for t, l in zip(tokvecses, layers)]


def in_spacy_worker() -> bool:
    """True in a process that ``nlp.pipe(n_process=N)`` started (its target is spaCy's ``_apply_pipes``)."""
    import multiprocessing

    target = getattr(multiprocessing.current_process(), "_target", None)
    return getattr(target, "__name__", "") == "_apply_pipes" and getattr(target, "__module__", "") == "spacy.language"


def install_vector_hooks(doc: Doc) -> None:
    """Make vectors and similarity of ``doc`` and its spans and tokens come from ``doc.tensor``.

    The ``elmo`` component does this itself; call it on docs that lost their hooks
    (``nlp.pipe(n_process=N)`` returns docs without them, as hooks are not serialized).
    """
    doc.user_hooks["vector"] = doc_vector
    doc.user_hooks["has_vector"] = has_tensor
    doc.user_span_hooks["vector"] = span_vector
    doc.user_span_hooks["has_vector"] = has_tensor
    doc.user_token_hooks["vector"] = token_vector
    doc.user_token_hooks["has_vector"] = has_tensor
    for hooks in (doc.user_hooks, doc.user_span_hooks, doc.user_token_hooks):
        hooks["similarity"] = cosine_similarity


# Module-level functions (not lambdas), so hooked docs can be pickled.
def _to_numpy(array) -> numpy.ndarray:
    return array.get() if hasattr(array, "get") else numpy.asarray(array)


def _mean_over_words(tensor, tokens) -> numpy.ndarray:
    """The mean of the tokens' rows, whitespace tokens left out (TF-Hub's ``default``
    sentence vector: the mean over the words, padding excluded); zeros if no word."""
    rows = [t.i for t in tokens if not t.is_space]
    if not rows:
        return numpy.zeros((tensor.shape[1],), dtype="float32")
    return _to_numpy(tensor[rows].mean(axis=0))


def doc_vector(doc: Doc) -> numpy.ndarray:
    return _mean_over_words(doc.tensor, doc)


def span_vector(span: Span) -> numpy.ndarray:
    return _mean_over_words(span.doc.tensor, span)


def token_vector(token: Token) -> numpy.ndarray:
    return _to_numpy(token.doc.tensor[token.i])


def cosine_similarity(obj: Union[Doc, Span, Token], other: Union[Doc, Span, Token]) -> float:
    a, b = _to_numpy(obj.vector), _to_numpy(other.vector)
    norm = float(numpy.linalg.norm(a) * numpy.linalg.norm(b))
    return float(numpy.dot(a, b) / norm) if norm else 0.0


def has_tensor(obj: Union[Doc, Span, Token]) -> bool:
    doc = obj if isinstance(obj, Doc) else obj.doc
    return doc.tensor.size > 0
