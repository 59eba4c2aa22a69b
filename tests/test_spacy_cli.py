"""spaCy's own CLI accepts configs with the component."""
import subprocess
import sys

import pytest

BASE_CONFIG = """
[paths]
train = null
dev = null

[nlp]
lang = "en"
pipeline = ["elmo", "tagger"]

[components]

[components.elmo]
factory = "elmo"
source = {source}

[components.elmo.model]
@architectures = "spacy-elmo.ElmoTok2Vec.v2"
width = 32
mix = "scalar"

[components.tagger]
factory = "tagger"

[components.tagger.model]
@architectures = "spacy.Tagger.v2"

[components.tagger.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = ${{components.elmo.model.width}}
upstream = "elmo"
"""


def _spacy(*args):
    return subprocess.run([sys.executable, "-m", "spacy", *args], capture_output=True, text=True)


@pytest.fixture
def base_config(tmp_path, reference_source):
    path = tmp_path / "base.cfg"
    source = "[" + ", ".join(f'"{p}"' for p in reference_source) + "]"
    path.write_text(BASE_CONFIG.format(source=source), encoding="utf8")
    return path


@pytest.fixture
def corpus(tmp_path):
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    doc = nlp.make_doc("The cat sat .")
    for token, tag in zip(doc, ["DT", "NN", "VBD", "."]):
        token.tag_ = tag
    path = tmp_path / "tiny.spacy"
    DocBin(docs=[doc]).to_disk(path)
    return path


def test_fill_config_and_debug_config(tmp_path, base_config, corpus):
    filled = tmp_path / "config.cfg"
    result = _spacy("init", "fill-config", str(base_config), str(filled))
    assert result.returncode == 0, result.stdout + result.stderr
    text = filled.read_text()
    assert "[components.elmo.model.get_spans]" in text and 'spacy-elmo.sent_or_window_spans.v2' in text and "sentencize = true" in text
    assert "max_batch_items = 4096" in text
    result = _spacy("debug", "config", str(filled), "--paths.train", str(corpus), "--paths.dev", str(corpus))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config is valid" in result.stdout


def test_debug_config_reports_a_bad_value(tmp_path, base_config, corpus):
    bad = tmp_path / "bad.cfg"
    filled = tmp_path / "config.cfg"
    assert _spacy("init", "fill-config", str(base_config), str(filled)).returncode == 0
    bad.write_text(filled.read_text().replace('mix = "scalar"', 'mix = "sum"'))
    result = _spacy("debug", "config", str(bad), "--paths.train", str(corpus), "--paths.dev", str(corpus))
    assert result.returncode != 0
    assert "Invalid mix 'sum'" in result.stdout + result.stderr
