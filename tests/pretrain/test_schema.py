"""The pretraining config schema and the run folder's rules (lock, overwrite,
resume checks): nonsense values are errors naming the setting, not runs."""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.util import load_config

from spacy_elmo.cli import main
from spacy_elmo.pretrain.schema import ConfigError, check_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = CONFIGS / "pretrain_tiny.cfg"
SMALL = ["--model.lstm_dim", "32", "--model.projection_dim", "8", "--model.filters", "[[1, 8], [2, 8]]",
         "--training.max_steps", "2", "--training.eval_every", "2", "--training.checkpoint_every", "2", "--training.batch_tokens", "200"]


@pytest.mark.parametrize("preset", sorted(CONFIGS.glob("pretrain_*.cfg")), ids=lambda p: p.stem)
def test_every_preset_passes(preset):
    check_config(load_config(preset, interpolate=True), preset)


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"training.grad_clip": -1}, "training.grad_clip must be a number >= 0"),
        ({"vocab.max_size": -1}, "vocab.max_size must be 0 (every word) or an integer >= 4"),
        ({"corpus.limit": -5}, "corpus.limit must be an integer >= 0"),
        ({"training.max_seconds": -1}, "training.max_seconds must be a number >= 0"),
        ({"training.max_seconds": "abc"}, "training.max_seconds must be a number >= 0, got 'abc'"),
        ({"training.learn_rate": 1e6}, "training.learn_rate must be a number > 0 and <= 1"),
        ({"training.learn_rate": "abc"}, "training.learn_rate must be"),
        ({"training.max_stepz": 10}, "unknown setting training.max_stepz (did you mean 'max_steps'?)"),
        ({"model.dropout": 1.0}, "model.dropout must be a number >= 0 and <= 0.99"),
        ({"model.filters": []}, "model.filters must be a non-empty list"),
        ({"model.cell_clip": 0}, "model.cell_clip must be a number > 0, or null"),
        ({"vocab.softmax": "hierarchical"}, "vocab.softmax must be one of 'auto', 'full', 'adaptive'"),
        ({"training.length_buckets": -1}, "training.length_buckets must be an integer >= 0"),
        ({"training.precision": "fp16"}, "training.precision must be one of 'fp32', 'bf16'"),
    ],
)
def test_nonsense_values_are_errors(override, expected):
    config = load_config(TINY, interpolate=True)
    for dotted, value in override.items():
        section, key = dotted.split(".")
        config[section][key] = value
    with pytest.raises(ConfigError) as err:
        check_config(config, TINY)
    assert expected in str(err.value)


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    rng = random.Random(0)
    words = "the a my old cat dog friend ball bird sees likes follows".split()
    folder = tmp_path_factory.mktemp("text")
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 10))) + " ." for _ in range(200)]
    (folder / "train.txt").write_text("\n".join(lines[:180]) + "\n")
    (folder / "dev.txt").write_text("\n".join(lines[180:]) + "\n")
    (folder / "empty.txt").write_text("\n\n")
    (folder / "other.txt").write_text("\n".join(reversed(lines[:180])) + "\n")
    return folder


def _pretrain(out, text, *extra, dev="dev.txt"):
    args = ["pretrain", str(TINY), str(out), "--quiet", "--paths.train", str(text / "train.txt"), *SMALL, *extra]
    if dev:
        args += ["--paths.dev", str(text / dev)]
    return main(args)


def test_the_run_folder_is_not_silently_replaced(tmp_path, text, capsys):
    out = tmp_path / "run"
    assert _pretrain(out, text) == 0
    checkpoint = (out / "checkpoints" / "last.pt").read_bytes()
    assert _pretrain(out, text) == 1
    err = capsys.readouterr().err
    assert "already holds a pretraining run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "checkpoints" / "last.pt").read_bytes() == checkpoint
    assert _pretrain(out, text, "--overwrite") == 0
    assert not (out / ".lock").exists()


def test_resume_checks_and_keeps_the_runs_own_paths(tmp_path, text, capsys):
    out = tmp_path / "run"
    assert _pretrain(tmp_path / "none", text, "--resume") == 1
    assert "nothing to resume" in capsys.readouterr().err
    assert _pretrain(out, text) == 0
    # without --paths.train / --paths.dev: the run's own, so held-out perplexity goes on
    args = ["pretrain", str(TINY), str(out), "--quiet", "--resume", *SMALL[:-6], "--training.max_steps", "4",
            "--training.eval_every", "2", "--training.checkpoint_every", "2", "--training.batch_tokens", "200"]
    assert main(args) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4] and all(m["dev_perplexity"] for m in metrics)
    assert _pretrain(out, text, "--resume", "--model.lstm_dim", "64") == 1
    err = capsys.readouterr().err
    assert "model.lstm_dim is 64, but the run" in err and "made with 32" in err
    args = ["pretrain", str(TINY), str(out), "--quiet", "--resume", "--paths.train", str(text / "other.txt"), *SMALL]
    assert main(args) == 1
    assert "paths.train" in capsys.readouterr().err


def test_degenerate_corpus_settings_are_errors(tmp_path, text, capsys):
    assert _pretrain(tmp_path / "a", text, dev="empty.txt") == 1
    assert "No held-out sentences" in capsys.readouterr().err
    assert _pretrain(tmp_path / "b", text, "--vocab.min_count", "100000") == 1
    assert "leaves no word" in capsys.readouterr().err


def test_a_second_run_into_a_busy_folder_is_refused(tmp_path, text, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(str(holder.pid))
        assert _pretrain(out, text) == 1
        assert f"in use by another pretraining run (process {holder.pid})" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    (out / ".lock").write_text("999999999")  # left by a killed run: taken over
    assert _pretrain(out, text) == 0
