"""``spacy elmo ...``: the commands inside spaCy's CLI (``spacy_cli`` entry point)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from spacy_elmo.cli import COMMANDS

TINY = Path(__file__).resolve().parents[2] / "configs" / "pretrain_tiny.cfg"


def spacy(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "spacy", *args], capture_output=True, text=True, cwd=cwd)


def test_spacy_help_lists_the_elmo_group_and_its_commands():
    assert "elmo" in spacy("--help").stdout
    out = spacy("elmo", "--help").stdout
    for name, _, _ in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_help_and_errors_come_from_the_one_argparse_cli(name):
    result = spacy("elmo", name, "--help")
    assert result.returncode == 0
    assert f"usage: spacy elmo {name}" in result.stdout


def test_bad_arguments_exit_nonzero_with_the_usage():
    result = spacy("elmo", "embed", "only-one-argument")
    assert result.returncode == 2
    assert "usage: spacy elmo embed" in result.stderr


@pytest.mark.slow
def test_spacy_elmo_pretrain_takes_spacy_style_overrides(tmp_path):
    text = "\n".join(f"the cat {w} the dog ." for w in ("sees", "likes", "finds") * 40)
    (tmp_path / "train.txt").write_text(text)
    result = spacy("elmo", "pretrain", str(TINY), str(tmp_path / "out"), "--paths.train", str(tmp_path / "train.txt"),
                   "--training.max_steps", "3", "--training.eval_every", "3", "--model.lstm_dim", "32", "--model.projection_dim", "8",
                   "--model.filters", "[[1, 4], [2, 4]]")
    assert result.returncode == 0, result.stderr[-2000:]
    # the corpus summary and the progress bar go to stderr
    assert "train: 120 sentences, 720 tokens; vocabulary 10 words (100.0% of training tokens)" in result.stderr
    assert "pretrain: 100%" in result.stderr
    metrics = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [3]
    assert (tmp_path / "out" / "model" / "weights.hdf5").exists()
