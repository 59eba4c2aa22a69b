"""Installing spacy-elmo must not slow spaCy down: `spacy.blank`, `spacy --help` and
`spacy info` import none of the biLM, layers, loaders or command modules.

torch and h5py themselves are imported by Thinc (``thinc.compat``) whenever they
are installed, with or without this package; where Thinc does not import them,
neither may spaCy's start-up with spacy-elmo installed.
"""
import functools
import json
import subprocess
import sys

import pytest

# What spaCy may load of this package at start-up: the factory's module and what it needs to register.
LIGHT = {"spacy_elmo", "spacy_elmo.registry", "spacy_elmo.errors", "spacy_elmo.pipeline", "spacy_elmo.cli", "spacy_elmo.cli.spacy_app"}

REPORT = "import sys, json; print(json.dumps({'ours': sorted(m for m in sys.modules if m.startswith('spacy_elmo')), 'torch': 'torch' in sys.modules, 'h5py': 'h5py' in sys.modules}))"


def _modules(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code + "\n" + REPORT], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@functools.lru_cache(maxsize=None)
def _thinc_alone() -> dict:
    return _modules("import thinc.api")


@pytest.mark.parametrize(
    "code",
    [
        "import spacy\nspacy.blank('en')",
        "import sys, runpy\nsys.argv = ['spacy', '--help']\ntry:\n    runpy.run_module('spacy', run_name='__main__')\nexcept SystemExit:\n    pass",
        "import sys, runpy\nsys.argv = ['spacy', 'info']\ntry:\n    runpy.run_module('spacy', run_name='__main__')\nexcept SystemExit:\n    pass",
    ],
    ids=["spacy.blank", "spacy --help", "spacy info"],
)
def test_spacy_start_up_loads_only_the_light_modules(code):
    found = _modules(code)
    assert set(found["ours"]) <= LIGHT, sorted(set(found["ours"]) - LIGHT)
    for heavy in ("torch", "h5py"):
        if not _thinc_alone()[heavy]:
            assert not found[heavy], f"{heavy} imported at start-up although Thinc does not import it"


def test_the_elmo_factory_is_still_registered():
    found = _modules("import spacy\nnlp = spacy.blank('en')\nassert 'elmo' in spacy.registry.factories.get_all()")
    assert "spacy_elmo.pipeline" in found["ours"]
