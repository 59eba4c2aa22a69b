"""Every name registered in setup.cfg's entry points resolves to the function it names."""
import configparser
import importlib
from pathlib import Path

import pytest
from spacy.util import registry

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"
REGISTRIES = {
    "spacy_factories": "factories",
    "spacy_architectures": "architectures",
    "spacy_span_getters": "span_getters",
    "spacy_model_loaders": "model_loaders",
    "spacy_cli": "cli",
}


def _entry_points():
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    section = parser["options.entry_points"]
    out = []
    for group in section:
        for line in section[group].strip().splitlines():
            name, target = (part.strip() for part in line.split("=", 1))
            out.append((group, name, target))
    return out


ENTRY_POINTS = _entry_points()


def _target(target):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def test_every_group_is_known():
    assert {group for group, _, _ in ENTRY_POINTS} == set(REGISTRIES) | {"console_scripts"}


@pytest.mark.parametrize("group, name, target", ENTRY_POINTS, ids=[f"{g}:{n}" for g, n, _ in ENTRY_POINTS])
def test_registered_name_resolves(group, name, target):
    func = _target(target)
    assert callable(func)  # a typer app for spacy_cli
    if group == "console_scripts":
        return
    import spacy_elmo.registry  # noqa: F401

    if group == "spacy_factories":
        import spacy

        nlp = spacy.blank("en")
        assert nlp.get_factory_meta(name).factory == name
        assert registry.factories.get(name) is func
        pipe = nlp.add_pipe(name)
        assert pipe.name == name
        return
    found = getattr(registry, REGISTRIES[group]).get(name)
    assert found is func
    if group.startswith("spacy_") and name.startswith("spacy-elmo."):
        assert name.rsplit(".", 1)[-1].startswith("v")  # versioned names


def test_span_getters_build_with_defaults():
    for group, name, _ in ENTRY_POINTS:
        if group == "spacy_span_getters":
            assert callable(registry.span_getters.get(name)())
