"""Training downstream components on ELMo with the shipped configs.

Small but real: a few hundred UD English-EWT sentences with Universal NER
entities (../shared/data), the fixture biLM, a few hundred steps.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from spacy.training import Corpus
from spacy.util import fix_random_seed, load_config, minibatch

from spacy_elmo.bilm import load_bilm
from spacy_elmo.layers.bilm_wrapper import get_torch_bilm

from .conftest import ROOT, SHARED, require_shared

sys.path.insert(0, str(ROOT / "scripts"))
from convert_ewt import ewt_docs, write_docbin  # noqa: E402

sys.path.pop(0)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    data = require_shared(SHARED / "data")
    out = tmp_path_factory.mktemp("corpus")
    vocab = spacy.blank("en").vocab
    ud, uner = data / "ud-english-ewt", data / "uner-english-ewt"
    train, _ = ewt_docs(vocab, ud / "en_ewt-ud-train.conllu", uner / "draft-train-2022-12" / "en_ewt-ud-train.iob2", limit=300)
    dev, _ = ewt_docs(vocab, ud / "en_ewt-ud-dev.conllu", uner / "en_ewt-ud-dev.iob2", limit=150)
    write_docbin(train, out / "train.spacy")
    write_docbin(dev, out / "dev.spacy")
    return out


@pytest.fixture(scope="module")
def biLM_folder(tmp_path_factory, reference_options, reference_weights):
    """A private copy of the fixture biLM, deleted before pipelines are reloaded."""
    folder = tmp_path_factory.mktemp("bilm")
    shutil.copy(reference_options, folder / "options.json")
    shutil.copy(reference_weights, folder / "weights.hdf5")
    return folder


def _nlp(config_name, corpus, bilm_folder, **overrides):
    from spacy.training.initialize import init_nlp

    settings = {
        "paths.train": str(corpus / "train.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "training.dropout": 0.1,
    }
    if "baseline" not in config_name:
        settings["paths.elmo"] = str(bilm_folder)
    settings.update(overrides)
    config = load_config(CONFIGS / f"{config_name}.cfg", overrides=settings, interpolate=False)
    fix_random_seed(0)
    nlp = init_nlp(config)
    return nlp, config


def _train(nlp, corpus, steps, batch_size=8):
    fix_random_seed(0)
    train = list(Corpus(corpus / "train.spacy")(nlp))
    optimizer = nlp.create_optimizer()
    losses_per_step = []
    step = 0
    while step < steps:
        for batch in minibatch(train, size=batch_size):
            losses = {}
            nlp.update(batch, sgd=optimizer, losses=losses, drop=0.1)
            losses_per_step.append(losses)
            step += 1
            if step >= steps:
                break
    return losses_per_step


def _dev_scores(nlp, corpus):
    return nlp.evaluate(list(Corpus(corpus / "dev.spacy")(nlp)))


def _mean(losses, name, part):
    values = [l[name] for l in losses]
    n = len(values) // 4
    return float(np.mean(values[:n] if part == "first" else values[-n:]))


@pytest.fixture(scope="module")
def trained(corpus, biLM_folder):
    nlp, _ = _nlp("tagger_parser_ner", corpus, biLM_folder)
    before = _dev_scores(nlp, corpus)
    # 20 epochs of the 30 training docs: the scores below were reached with a wide margin at 60 steps
    losses = _train(nlp, corpus, steps=80)
    after = _dev_scores(nlp, corpus)
    return nlp, losses, before, after


def test_losses_fall_and_dev_scores_rise(trained):
    nlp, losses, before, after = trained
    for name in ("tagger", "parser", "ner"):
        assert _mean(losses, name, "last") < 0.7 * _mean(losses, name, "first"), name
    print({k: (round(before[k] or 0, 3), round(after[k] or 0, 3)) for k in ("tag_acc", "dep_uas", "dep_las", "ents_f")})
    assert after["tag_acc"] > before["tag_acc"] + 0.3
    assert after["dep_las"] > before["dep_las"] + 0.2
    assert after["ents_f"] > before["ents_f"] + 0.05


def test_projection_learned_from_every_layer_and_frozen_bilm_did_not(trained, reference_bilm):
    # the shipped recipe: mix = "all" (the layers concatenated), a zero-initialised projection to the CNN's input
    nlp = trained[0]
    elmo = nlp.get_pipe("elmo")
    assert elmo.elmo_model.get_ref("mix").attrs["mix"] == "all"
    W = elmo.model.get_ref("projection").layers[0].get_param("W")  # (width, n_layers * layer width)
    n_layers = 3
    assert W.shape[1] % n_layers == 0
    for block in np.split(W, n_layers, axis=1):
        assert np.abs(block).max() > 1e-3
    trained_bilm = get_torch_bilm(elmo.bilm_layer)
    for (name, a), b in zip(trained_bilm.state_dict().items(), reference_bilm.state_dict().values()):
        assert torch.equal(a, b), name
    assert not any(p.requires_grad for p in trained_bilm.parameters())


def test_scalar_mix_moves(corpus, biLM_folder):
    nlp, _ = _nlp("tagger_parser", corpus, biLM_folder, **{"components.elmo.model.elmo.mix": "scalar"})
    _train(nlp, corpus, steps=20)
    mix = nlp.get_pipe("elmo").elmo_model.get_ref("mix")
    assert np.abs(mix.get_param("weights")).max() > 1e-3
    assert abs(float(mix.get_param("gamma")[0]) - 1.0) > 1e-4


def test_fine_tuning_the_top_layer(corpus, biLM_folder, reference_bilm):
    nlp, _ = _nlp("tagger_parser", corpus, biLM_folder, **{"components.elmo.model.elmo.fine_tune": "top", "components.elmo.model.elmo.lr_scale": 0.5})
    _train(nlp, corpus, steps=20)
    bilm = get_torch_bilm(nlp.get_pipe("elmo").bilm_layer)
    reference = reference_bilm.state_dict()
    changed = {name for name, value in bilm.state_dict().items() if not torch.equal(value, reference[name])}
    assert changed == {f"lstm.layers.1.{p}" for p in ("w_input", "w_hidden", "bias", "w_proj")}


def test_frozen_feature_cache_gives_the_same_losses(corpus, biLM_folder):
    runs = []
    for cache_mb in (1024, 0):
        nlp, _ = _nlp("tagger_parser", corpus, biLM_folder, **{"components.elmo.model.elmo.cache_mb": cache_mb})
        losses = _train(nlp, corpus, steps=12, batch_size=16)  # 6 epochs of 2 batches: 5 hit the cache
        cache = nlp.get_pipe("elmo").bilm_layer.attrs["feature_cache"]
        runs.append((losses, cache.hits, cache.misses))
    (cached, hits, misses), (uncached, no_hits, _) = runs
    assert hits > 2 * misses and no_hits == 0
    for a, b in zip(cached, uncached):
        for name in ("tagger", "parser"):
            assert a[name] == pytest.approx(b[name], rel=1e-3, abs=1e-3)


@pytest.fixture(scope="module")
def cli_trained(corpus, biLM_folder, tmp_path_factory):
    """`spacy train` on the shipped config, then the biLM files are deleted."""
    bilm = tmp_path_factory.mktemp("cli_bilm")
    shutil.copytree(biLM_folder, bilm, dirs_exist_ok=True)
    out = tmp_path_factory.mktemp("training")
    cmd = [
        sys.executable, "-m", "spacy", "train", str(CONFIGS / "tagger_parser_ner.cfg"), "--output", str(out),
        "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
        "--paths.elmo", str(bilm), "--training.max_steps", "60", "--training.eval_frequency", "30",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shutil.rmtree(bilm)
    return out / "model-last"


TEXTS = ["Barack Obama visited Paris on Tuesday .", "I could not find one place in Tampa Bay that sells morcillas .", ""]


def _predictions(nlp):
    out = []
    for doc in nlp.pipe(TEXTS):
        out.append(([t.tag_ for t in doc], [(t.dep_, t.head.i) for t in doc], [(e.text, e.label_) for e in doc.ents], doc.tensor.copy()))
    return out


def _same(a, b):
    for (tags_a, deps_a, ents_a, tensor_a), (tags_b, deps_b, ents_b, tensor_b) in zip(a, b):
        assert tags_a == tags_b and deps_a == deps_b and ents_a == ents_b
        np.testing.assert_array_equal(tensor_a, tensor_b)


def test_save_reload_and_package_offline(cli_trained, tmp_path):
    nlp = spacy.load(cli_trained)
    expected = _predictions(nlp)
    nlp.to_disk(tmp_path / "saved")
    _same(expected, _predictions(spacy.load(tmp_path / "saved")))
    packages = tmp_path / "packages"
    packages.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(cli_trained), str(packages), "--name", "elmo_test", "--version", "0.0.1", "--build", "sdist", "--force"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sdists = list(packages.glob("**/dist/*.tar.gz"))
    assert len(sdists) == 1
    target = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target), str(sdists[0])],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # import the installed package in a fresh process with the network unusable
    script = (
        "import sys, json, socket; sys.path.insert(0, %r)\n"
        "def no_network(*args, **kwargs): raise OSError('network use in an offline test')\n"
        "socket.socket.connect = no_network; socket.create_connection = no_network\n"
        "import en_elmo_test\n"
        "nlp = en_elmo_test.load()\n"
        "docs = list(nlp.pipe(%r))\n"
        "print(json.dumps([[t.tag_ for t in d] for d in docs]))\n"
    ) % (str(target), TEXTS)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert __import__("json").loads(result.stdout.strip().splitlines()[-1]) == [e[0] for e in expected]


def test_spacy_evaluate_and_benchmark_speed(cli_trained, corpus, tmp_path):
    metrics = tmp_path / "metrics.json"
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "evaluate", str(cli_trained), str(corpus / "dev.spacy"), "--output", str(metrics)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    scores = __import__("json").loads(metrics.read_text())
    assert 0 < scores["tag_acc"] <= 1 and 0 <= scores["dep_las"] <= 1 and "ents_f" in scores
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "benchmark", "speed", str(cli_trained), str(corpus / "dev.spacy"), "--batches", "30", "--batch-size", "8", "--warmup", "1"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "words/s" in result.stdout
