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
    "thinc_model_loaders": "model_loaders",
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


LOADER_SCRIPT = """
import importlib, json, sys
for module in json.loads(sys.argv[1]):
    importlib.import_module(module)
import spacy
from spacy.util import registry
from thinc.api import Config
nlp = spacy.blank("en")
nlp.add_pipe("elmo", config={"source": "unused-because-the-loader-wins"})
config = Config({"loader": {"@model_loaders": "spacy-elmo.BilmTfLoader.v1", "source": json.loads(sys.argv[2])}})
loader = registry.resolve(config)["loader"]
nlp.get_pipe("elmo").initialize(loader=loader)
registry.model_loaders.get("spacy-curated-transformers.PyTorchCheckpointLoader.v1")
print(nlp("The cat sat .").tensor.shape)
"""


@pytest.mark.parametrize("first", ["spacy_curated_transformers", "spacy_elmo"])
def test_model_loaders_shared_with_spacy_curated_transformers(reference_source, first):
    """spacy-curated-transformers creates ``model_loaders`` on Thinc's registry;
    either import order leaves both packages' loaders resolvable from a config."""
    import json
    import subprocess
    import sys

    pytest.importorskip("spacy_curated_transformers")
    modules = ["spacy_curated_transformers.util", "spacy_elmo.registry"]
    if first == "spacy_elmo":
        modules.reverse()
    result = subprocess.run(
        [sys.executable, "-c", LOADER_SCRIPT, json.dumps(modules), json.dumps(reference_source)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("(4, 32)")
