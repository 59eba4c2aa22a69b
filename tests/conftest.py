"""Shared fixtures. Data in ../shared is pointed at, never copied into the project.

Tests that need ../shared skip on a machine without it, but fail when the
environment variable ``CI`` is set: in CI they must run.
"""
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SPACY_ELMO_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference" / "allennlp-elmo"


def require_shared(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: in CI the shared data must be beside the checkout (../shared).")
        pytest.skip(f"{path} not available (needs ../shared)")
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The AllenNLP ELMo test fixtures (a tiny biLM and bilm-tf's outputs)."""
    return require_shared(REFERENCE)


@pytest.fixture(scope="session")
def reference_options(reference_dir: Path) -> Path:
    return reference_dir / "options.json"


@pytest.fixture(scope="session")
def reference_weights(reference_dir: Path) -> Path:
    return reference_dir / "lm_weights.hdf5"


@pytest.fixture(scope="session")
def reference_bilm(reference_options: Path, reference_weights: Path):
    from spacy_elmo.bilm import load_bilm

    return load_bilm(reference_options, reference_weights)


@pytest.fixture(scope="session")
def reference_sentences(reference_dir: Path):
    """3 lists of 10 sentences (whitespace-tokenised strings)."""
    return json.loads((reference_dir / "sentences.json").read_text(encoding="utf8"))


@pytest.fixture(scope="session")
def reference_source(reference_options: Path, reference_weights: Path):
    """The fixture biLM as an ``elmo`` source: the two file paths."""
    return [str(reference_options), str(reference_weights)]


@pytest.fixture(scope="session")
def elmo_nlp(reference_source):
    """A blank English pipeline with an initialized ``elmo`` (fixture biLM, scalar mix)."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": reference_source})
    nlp.initialize()
    return nlp


def bilm_average(bilm, tokens):
    """Average of the biLM layers for one token list, straight from the model layer."""
    import torch

    from spacy_elmo.bilm import batch_to_ids

    with torch.no_grad():
        return bilm(batch_to_ids([list(tokens)])).layers[:, 0].mean(dim=0).numpy()
