"""The catalogue registries this package adds to spaCy's ``registry``.

``span_getters`` is the registry spacy-transformers uses too (same namespace,
so its span getters and ours resolve from either package). ``model_loaders``
holds the functions that read weights at ``[initialize]``; it is the registry
spacy-curated-transformers creates on Thinc's registry: same namespace
(``thinc``, ``model_loaders``), so the same entries and the same entry-point
group (``thinc_model_loaders``) whichever package is imported first. It is
set on spaCy's registry, not Thinc's, because spacy-curated-transformers
creates Thinc's unconditionally and fails if it exists. Names are registered through setup.cfg's
entry points only (``spacy_span_getters``, ``thinc_model_loaders``), the one
list of everything this package registers.
"""
import catalogue
from spacy.util import registry

LOADERS_GROUP = "thinc_model_loaders"

if not hasattr(registry, "span_getters"):
    registry.span_getters = catalogue.create("spacy", "span_getters", entry_points=True)
if not hasattr(registry, "model_loaders"):
    registry.model_loaders = catalogue.create("thinc", "model_loaders", entry_points=True)


def _own_loaders_reachable() -> None:
    """If another package made ``model_loaders`` under another namespace (its
    entry points are then not ours), register our loaders into it directly."""
    loaders = registry.model_loaders
    if getattr(loaders, "entry_point_namespace", None) == LOADERS_GROUP:
        return
    from importlib.metadata import entry_points

    for ep in entry_points(group=LOADERS_GROUP):
        if ep.name.startswith("spacy-elmo.") and not loaders.has(ep.name):
            loaders.register(ep.name, func=ep.load())


_own_loaders_reachable()

__all__ = ["registry"]
