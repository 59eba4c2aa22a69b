"""`pretrain --init SOURCE`: continued pretraining from an existing biLM (domain adaptation)."""
import json
import random

import h5py
import numpy as np
import pytest
import torch

from spacy_elmo.bilm import batch_to_ids, load_bilm
from spacy_elmo.cli import main

from .test_schema import TINY

ARCH = ["--model.lstm_dim", "32", "--model.projection_dim", "8", "--model.filters", "[[1, 8], [2, 8]]"]
STEPS = ["--training.batch_tokens", "200", "--training.checkpoint_every", "1000"]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    rng = random.Random(0)
    words = "the a my old young cat dog friend ball bird river sees likes follows finds".split()
    folder = tmp_path_factory.mktemp("domain")
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 10))) + " ." for _ in range(900)]
    (folder / "general.txt").write_text("\n".join(lines[:500]) + "\n")
    (folder / "domain.txt").write_text("\n".join(lines[500:800]) + "\n")
    (folder / "dev.txt").write_text("\n".join(lines[800:]) + "\n")
    return folder


@pytest.fixture(scope="module")
def general(texts, tmp_path_factory):
    out = tmp_path_factory.mktemp("general") / "run"
    args = ["pretrain", str(TINY), str(out), "--quiet", "--paths.train", str(texts / "general.txt"), *ARCH, *STEPS,
            "--training.max_steps", "40", "--training.eval_every", "40"]
    assert main(args) == 0
    return out / "model"


def _dev_ppl(out):
    return [json.loads(line)["dev_perplexity"] for line in (out / "metrics.jsonl").read_text().splitlines()][-1]


def test_init_starts_lower_than_scratch_and_exports(tmp_path, texts, general):
    common = ["--quiet", "--paths.train", str(texts / "domain.txt"), "--paths.dev", str(texts / "dev.txt"), *STEPS,
              "--training.max_steps", "3", "--training.eval_every", "3"]
    assert main(["pretrain", str(TINY), str(tmp_path / "scratch"), *common, *ARCH]) == 0
    assert main(["pretrain", str(TINY), str(tmp_path / "init"), *common, "--init", str(general)]) == 0
    scratch, init = _dev_ppl(tmp_path / "scratch"), _dev_ppl(tmp_path / "init")
    assert init < scratch, (init, scratch)
    bilm = load_bilm(tmp_path / "init" / "model" / "options.json", tmp_path / "init" / "model" / "weights.hdf5")
    assert bilm.config.lstm_dim == 32
    with torch.inference_mode():
        assert torch.isfinite(bilm(batch_to_ids([["the", "cat", "sees", "a", "dog", "."]])).layers).all()


def test_freeze_steps_keep_the_lower_layers(tmp_path, texts, general):
    args = ["pretrain", str(TINY), str(tmp_path / "run"), "--quiet", "--paths.train", str(texts / "domain.txt"), *STEPS,
            "--training.max_steps", "2", "--training.eval_every", "2", "--init", str(general), "--freeze-steps", "2"]
    assert main(args) == 0
    with h5py.File(general / "weights.hdf5") as before, h5py.File(tmp_path / "run" / "model" / "weights.hdf5") as after:
        assert np.array_equal(before["char_embed"][...], after["char_embed"][...])
        assert np.array_equal(before["RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0"][...], after["RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0"][...])
        assert not np.array_equal(before["RNN_0/RNN/MultiRNNCell/Cell1/LSTMCell/W_0"][...], after["RNN_0/RNN/MultiRNNCell/Cell1/LSTMCell/W_0"][...])


def test_contradicting_architecture_and_bad_flags(tmp_path, texts, general, capsys):
    base = ["pretrain", str(TINY), str(tmp_path / "run"), "--quiet", "--paths.train", str(texts / "domain.txt"), *STEPS]
    assert main(base + ["--init", str(general), "--model.lstm_dim", "64"]) == 1
    err = capsys.readouterr().err
    assert "model.lstm_dim = 32" in err and "--model.lstm_dim 64" in err
    assert main(base + ["--freeze-steps", "3"]) == 1
    assert "--freeze-steps needs --init" in capsys.readouterr().err
    assert main(base + ["--init", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_continue_an_elmoformanylangs_biLM_and_resume(tmp_path, texts):
    """--init takes an EFML folder: its token encoder and dictionaries come along, the export is an EFML folder."""
    from spacy_elmo.bilm import load_efml

    from ..bilm.efml_model import write_efml_model

    source = write_efml_model(tmp_path / "efml")
    out = tmp_path / "run"
    common = ["--quiet", "--paths.train", str(texts / "domain.txt"), "--paths.dev", str(texts / "dev.txt"), *STEPS, "--training.eval_every", "2"]
    assert main(["pretrain", str(TINY), str(out), *common, "--training.max_steps", "2", "--init", str(source), "--freeze-steps", "1"]) == 0
    before = load_efml(source)
    after = load_efml(out / "model")
    assert after.config == before.config and after.vocab == before.vocab
    assert not torch.equal(after.lstm.layers[-1].w_hidden, before.lstm.layers[-1].w_hidden)  # it learnt
    assert main(["pretrain", str(TINY), str(out), "--resume", "--quiet", *STEPS, "--training.max_steps", "3", "--training.eval_every", "3"]) == 0
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2, 3]
    resumed = load_efml(out / "model")
    with torch.inference_mode():
        layers = resumed(resumed.batch_to_ids([["der", "Hund", "sieht", "."]])).layers
    assert torch.isfinite(layers).all() and layers.shape == (3, 1, 4, 16)
