"""`python -m spacy_elmo pretrain`: learning, exact resume after SIGKILL, torchrun, export."""
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spacy_elmo.bilm import batch_to_ids, load_bilm
from spacy_elmo.cli import main
from spacy_elmo.pretrain.data import read_sentences
from spacy_elmo.pretrain.vocab import WordVocab

from ..conftest import SHARED, require_shared

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = CONFIGS / "pretrain_tiny.cfg"
pytestmark = pytest.mark.slow
FAST = ["--model.lstm_dim", "64", "--model.projection_dim", "16", "--model.filters", "[[1, 8], [2, 8], [3, 16]]"]


def _losses(out: Path):
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "train_loss.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def grammar_text(tmp_path_factory):
    rng = random.Random(0)
    words = "the a my one old young cat dog friend man woman ball bird river food sees likes follows finds".split()
    folder = tmp_path_factory.mktemp("text")
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + " ." for _ in range(600)]
    (folder / "train.txt").write_text("\n".join(lines[:500]) + "\n")
    (folder / "dev.txt").write_text("\n".join(lines[500:]) + "\n")
    return folder


def _cmd(out, train, dev, *extra):
    return [sys.executable, "-m", "spacy_elmo", "pretrain", str(TINY), str(out), "--quiet",
            "--paths.train", str(train), "--paths.dev", str(dev), *FAST, *extra]


def test_tiny_preset_learns_below_the_unigram_perplexity(tmp_path):
    novel = require_shared(SHARED / "data" / "english-novels-1870-1930" / "Doyle_Hound_1902.txt")
    lines = novel.read_text(encoding="utf8").splitlines()
    (tmp_path / "train.txt").write_text("\n".join(lines[:3000]))
    (tmp_path / "dev.txt").write_text("\n".join(lines[3000:3400]))
    out = tmp_path / "run"
    args = ["pretrain", str(TINY), str(out), "--quiet", "--paths.train", str(tmp_path / "train.txt"),
            "--paths.dev", str(tmp_path / "dev.txt"), "--training.max_steps", "100", "--training.eval_every", "25"]
    assert main(args) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [25, 50, 75, 100]
    assert all({"step", "tokens", "loss", "dev_perplexity"} <= set(m) for m in metrics)
    vocab = WordVocab.from_file(out / "model" / "vocab.txt")
    counts = vocab.unigram_counts(read_sentences(tmp_path / "train.txt"))
    held = vocab.unigram_counts(read_sentences(tmp_path / "dev.txt"))
    total = sum(counts)
    unigram = math.exp(-sum(n * math.log(max(counts[i], 1) / total) for i, n in enumerate(held) if n) / sum(held))
    print(f"dev perplexity {[round(m['dev_perplexity'], 1) for m in metrics]}, unigram {unigram:.1f}")
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert metrics[-1]["dev_perplexity"] < metrics[0]["dev_perplexity"]
    assert metrics[-1]["dev_perplexity"] < unigram
    # the export loads as an ELMo model and matches the trained weights
    bilm = load_bilm(out / "model" / "options.json", out / "model" / "weights.hdf5")
    saved = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    for name, value in bilm.state_dict().items():
        assert torch.equal(value, saved[f"bilm.{name}"]), name


def test_sigkill_then_resume_continues_exactly(tmp_path, grammar_text):
    train, dev = grammar_text / "train.txt", grammar_text / "dev.txt"
    common = ["--training.max_steps", "30", "--training.checkpoint_every", "10", "--training.eval_every", "10", "--training.batch_tokens", "200"]
    straight = tmp_path / "straight"
    subprocess.run(_cmd(straight, train, dev, *common), check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(killed, train, dev, *common), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (killed / "train_loss.jsonl").exists() and max(_losses(killed), default=0) >= 14:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    checkpoint = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    assert 10 <= checkpoint["step"] < 30
    resumed_from = checkpoint["step"]
    subprocess.run(_cmd(killed, train, dev, *common, "--resume"), check=True, capture_output=True)
    a, b = _losses(straight), _losses(killed)
    assert sorted(b) == list(range(1, 31))
    for step in range(resumed_from + 1, 31):
        assert b[step] == pytest.approx(a[step], rel=1e-6, abs=1e-6), step
    assert not list((killed / "checkpoints").glob("*.tmp"))
    assert [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()] == [10, 20, 30]


def test_two_processes_follow_the_single_process_trajectory(tmp_path, grammar_text):
    train, dev = grammar_text / "train.txt", grammar_text / "dev.txt"
    common = ["--training.max_steps", "6", "--training.eval_every", "6", "--training.batch_tokens", "300", "--model.dropout", "0"]
    single = tmp_path / "single"
    subprocess.run(_cmd(single, train, dev, *common, "--device", "cpu"), check=True, capture_output=True)
    double = tmp_path / "double"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = _cmd(double, train, dev, *common, "--device", "cpu")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(torchrun + cmd[1:], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = _losses(single), _losses(double)
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4), step
    assert (double / "model" / "weights.hdf5").exists()


def test_bad_config_values_are_clear_errors(tmp_path, grammar_text, capsys):
    base = ["pretrain", str(TINY), str(tmp_path / "o"), "--quiet"]
    assert main(base) == 1
    assert "--paths.train" in capsys.readouterr().err
    assert main(base + ["--paths.train", str(tmp_path / "missing.txt")]) == 1
    assert "missing.txt not found" in capsys.readouterr().err
    assert main(base + ["--paths.train", str(grammar_text / "train.txt"), "--training.optimizer", "sgd"]) == 1
    assert "one of 'adam', 'adagrad'" in capsys.readouterr().err
    assert main(base + ["--paths.train", str(grammar_text / "train.txt"), "--model.activation", "gelu"]) == 1
    assert "one of 'relu', 'tanh'" in capsys.readouterr().err
    assert main(["pretrain", str(tmp_path / "nope.cfg"), str(tmp_path / "o")]) == 1
    assert "nope.cfg not found" in capsys.readouterr().err
    broken = tmp_path / "broken.cfg"
    broken.write_text("[paths]\ntrain = 1\n[model\n")
    assert main(["pretrain", str(broken), str(tmp_path / "o")]) == 1
    assert "broken.cfg could not be read" in capsys.readouterr().err
    partial = tmp_path / "partial.cfg"
    partial.write_text("[paths]\ntrain = null\ndev = null\n")
    assert main(["pretrain", str(partial), str(tmp_path / "o")]) == 1
    assert "has no [corpus] section" in capsys.readouterr().err
    assert main(base + ["--paths.train", str(grammar_text / "train.txt"), "--training.batch_tokens", "0"]) == 1
    assert "training.batch_tokens must be an integer >= 1" in capsys.readouterr().err
    assert main(base + ["--paths.train", str(grammar_text / "train.txt"), "--training.threads", "-2"]) == 1
    assert "training.threads must be an integer >= 0" in capsys.readouterr().err


def test_bf16_autocast_trains_close_to_fp32_and_exports_float32(tmp_path, grammar_text, monkeypatch):
    """training.precision = "bf16": the forward's products in bfloat16, the weights float32 (numbers, not speed:
    bf16 is allowed here even on a CPU without native bf16 products)."""
    monkeypatch.setattr("spacy_elmo.bilm.precision.bf16_is_fast", lambda device: True)
    runs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        args = ["pretrain", str(TINY), str(out), "--quiet", "--paths.train", str(grammar_text / "train.txt"),
                "--paths.dev", str(grammar_text / "dev.txt"), *FAST, "--training.max_steps", "6", "--training.eval_every", "3",
                "--training.precision", precision]
        assert main(args) == 0
        runs[precision] = (_losses(out), [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()])
    (fp32, fp32_metrics), (bf16, bf16_metrics) = runs["fp32"], runs["bf16"]
    assert fp32[1] != bf16[1]  # the products did run in bf16
    assert abs(bf16[1] - fp32[1]) < 0.02 * fp32[1]  # same start, bf16 rounding only
    assert all(math.isfinite(v) for v in bf16.values()) and bf16[6] < bf16[1]
    assert abs(bf16_metrics[-1]["dev_perplexity"] - fp32_metrics[-1]["dev_perplexity"]) < 0.1 * fp32_metrics[-1]["dev_perplexity"]
    bilm = load_bilm(tmp_path / "bf16" / "model" / "options.json", tmp_path / "bf16" / "model" / "weights.hdf5")
    assert all(p.dtype == torch.float32 for p in bilm.parameters())


def test_bf16_on_a_cpu_without_native_bf16_is_a_clear_error_before_reading_the_corpus(tmp_path, grammar_text, monkeypatch, capsys):
    monkeypatch.setattr("spacy_elmo.bilm.precision.bf16_is_fast", lambda device: False)
    args = ["pretrain", str(TINY), str(tmp_path / "o"), "--quiet", "--paths.train", str(tmp_path / "not-read.txt"),
            "--training.precision", "bf16"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "training.precision = 'bf16'" in err and "native bfloat16" in err and "--training.precision fp32" in err
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_plot_metrics(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": s, "tokens": s * 1000, "loss": 6 - s / 100, "dev_perplexity": 400 - s} for s in (10, 20, 30)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["plot-metrics", str(run)]) == 0
    png = run / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert main(["plot-metrics", str(tmp_path / "none")]) == 1
