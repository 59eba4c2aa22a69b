"""The shipped training configs: valid, and each ELMo config differs from its
baseline twin only in the token representation."""
import subprocess
import sys
from pathlib import Path

import pytest
from thinc.api import Config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
NAMES = ["ner", "tagger_parser", "tagger_parser_ner"]


def _without_token_representation(config: Config, upstream: str) -> dict:
    cfg = Config(config).copy()
    cfg["components"].pop(upstream)
    cfg["paths"].pop("elmo", None)
    cfg["nlp"]["pipeline"] = [p for p in cfg["nlp"]["pipeline"] if p != upstream]
    for name, component in cfg["components"].items():
        listener = component["model"]["tok2vec"]
        assert listener["@architectures"] == "spacy.Tok2VecListener.v1"
        assert listener.pop("upstream") == upstream
        listener.pop("width")
    return cfg


@pytest.mark.parametrize("name", NAMES)
def test_twins_differ_only_in_the_token_representation(name):
    elmo = Config().from_disk(CONFIGS / f"{name}.cfg", interpolate=False)
    baseline = Config().from_disk(CONFIGS / f"{name}_baseline.cfg", interpolate=False)
    assert elmo["nlp"]["pipeline"][0] == "elmo" and baseline["nlp"]["pipeline"][0] == "tok2vec"
    assert _without_token_representation(elmo, "elmo") == _without_token_representation(baseline, "tok2vec")
    # the ELMo side contains the baseline's tok2vec unchanged, and the same width
    elmo_tok2vec = Config(elmo["components"]["elmo"]["model"]["tok2vec"]).to_str()
    assert elmo_tok2vec.replace("components.elmo.model.tok2vec", "components.tok2vec.model") == Config(baseline["components"]["tok2vec"]["model"]).to_str()
    assert elmo["components"]["elmo"]["model"]["width"] == baseline["components"]["tok2vec"]["model"]["encode"]["width"]
    assert elmo["system"]["gpu_allocator"] == baseline["system"]["gpu_allocator"] == "pytorch"


@pytest.mark.parametrize("name", [n + suffix for n in NAMES for suffix in ("", "_baseline")])
def test_debug_config(name, tmp_path, reference_dir):
    import spacy
    from spacy.tokens import DocBin

    doc = spacy.blank("en")("The cat sat .")
    DocBin(docs=[doc]).to_disk(tmp_path / "tiny.spacy")
    args = [sys.executable, "-m", "spacy", "debug", "config", str(CONFIGS / f"{name}.cfg"),
            "--paths.train", str(tmp_path / "tiny.spacy"), "--paths.dev", str(tmp_path / "tiny.spacy")]
    if not name.endswith("_baseline"):
        args += ["--paths.elmo", str(reference_dir)]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config is valid" in result.stdout
