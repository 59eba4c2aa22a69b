"""scripts/curve.py: subsets by sentence count, size validation, the table."""
import sys

import pytest
import spacy
from spacy.tokens import DocBin

from ..conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import curve  # noqa: E402

sys.path.pop(0)


@pytest.fixture
def train(tmp_path):
    nlp = spacy.blank("en")
    docs = []
    for i in range(5):  # 5 docs of 3 sentences
        doc = nlp.make_doc("A b . C d . E f .")
        for token in doc:
            token.is_sent_start = token.i in (0, 3, 6)
        docs.append(doc)
    path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(path)
    return path


def test_subset_takes_whole_docs_up_to_the_size(train, tmp_path):
    assert curve.write_subset(train, 4, tmp_path / "a.spacy") == 6
    assert curve.write_subset(train, 0, tmp_path / "b.spacy") == 15
    assert len(DocBin().from_disk(tmp_path / "a.spacy")) == 2


def test_a_size_larger_than_the_corpus_is_a_clear_error(train, tmp_path):
    with pytest.raises(SystemExit, match="larger than the training corpus.*15 sentences"):
        curve.write_subset(train, 16, tmp_path / "c.spacy")


@pytest.mark.parametrize("text", ["a,b", "-1", ""])
def test_bad_sizes(text):
    with pytest.raises(SystemExit, match="--sizes"):
        curve.parse_sizes(text)


def test_table_has_twins_and_differences():
    rows = [{"size": 50, "sentences": 50, "steps": 200, "baseline": {"tag_acc": 0.5, "dep_las": 0.4, "ents_f": 0.1}, "ELMo": {"tag_acc": 0.6, "dep_las": 0.35, "ents_f": None}}]
    table = curve.markdown(rows).splitlines()
    assert table[0].startswith("| train sentences | steps | TAG twin | TAG ELMo | TAG Δ")
    assert table[2] == "| 50 | 200 | 50.00 | 60.00 | +10.00 | 40.00 | 35.00 | -5.00 | 10.00 | – | – |"


def test_steps_one_for_all_or_one_per_size():
    assert curve.parse_steps("2000", [500, 1000, 0]) == [2000, 2000, 2000]
    assert curve.parse_steps("1500,1500,3000", [500, 1000, 0]) == [1500, 1500, 3000]


@pytest.mark.parametrize("text", ["1500,3000", "x", "-5"])
def test_bad_steps_name_the_sizes(text):
    with pytest.raises(SystemExit, match="--steps.*3 sizes: 500,1000,0"):
        curve.parse_steps(text, [500, 1000, 0])


def test_a_kept_run_counts_only_for_the_same_steps(tmp_path, capsys):
    (tmp_path / "result.json").write_text('{"tag_acc": 0.9, "steps": 1500}')
    assert curve.kept_result(tmp_path, 1500)["tag_acc"] == 0.9
    assert curve.kept_result(tmp_path, 3000) is None
    assert "trained for 1500 steps, 3000 asked" in capsys.readouterr().out
    assert curve.kept_result(tmp_path / "missing", 1500) is None
