"""The catalogue registries this package adds to spaCy's ``registry``.

``span_getters`` is the registry spacy-transformers uses too (same namespace,
so its span getters and ours resolve from either package); ``model_loaders``
holds the functions that read biLM weights at ``[initialize]``. Names are
registered through setup.cfg's entry points only (``spacy_span_getters``,
``spacy_model_loaders``), the one list of everything this package registers.
"""
import catalogue
from spacy.util import registry

for _name in ("span_getters", "model_loaders"):
    if not hasattr(registry, _name):
        setattr(registry, _name, catalogue.create("spacy", _name, entry_points=True))

__all__ = ["registry"]
