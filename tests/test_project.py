"""The spaCy project (project.yml) end to end, offline.

The assets are copied from ../shared/data into a temporary copy of the project:
their md5s are those of the real upstream files, so ``spacy project assets`` must
verify and keep every one of them; a proxy that refuses connections makes any
download attempt fail. Then ``spacy project run smoke`` runs the ``all`` workflow
with tiny variables and every declared output must exist, with sane metrics.
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import srsly

from .conftest import REFERENCE, ROOT, SHARED, require_shared

pytestmark = pytest.mark.slow

DATA = SHARED / "data"
OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}


def project_assets(extra: bool = False):
    return [a for a in srsly.read_yaml(ROOT / "project.yml")["assets"] if extra or not a.get("extra")]


def run(args, cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGS`` in ``cwd`` with every download refused."""
    env = {**os.environ, **OFFLINE, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    require_shared(DATA)
    path = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "project.yml", path)
    for folder in ("configs", "scripts"):
        shutil.copytree(ROOT / folder, path / folder)
    # copies, found by file name (the documented way to place the assets offline)
    run(["scripts/assets_from_folder.py", str(DATA), "--project", str(path)], path)
    return path


def test_every_asset_is_pinned_and_checksummed():
    for asset in project_assets(extra=True):
        assert asset["url"].startswith("https://"), asset
        if not asset.get("extra"):
            assert len(asset.get("checksum", "")) == 32, f"{asset['dest']} has no md5"
            if "raw.githubusercontent.com" in asset["url"]:
                commit = asset["url"].split("/")[5]
                assert len(commit) == 40, f"{asset['dest']} is not pinned to a commit: {asset['url']}"


def test_assets_in_place_are_verified_not_downloaded(project):
    out = run(["-m", "spacy", "project", "assets", str(project)], project).stdout
    assert out.count("Skipping download with matching checksum") == len(project_assets()), out[-2000:]
    assert "Downloaded" not in out


def test_smoke_runs_every_step_offline_with_sane_metrics(project):
    run(["-m", "spacy", "project", "run", "smoke", str(project)], project)
    smoke = project / "smoke"
    config = srsly.read_yaml(ROOT / "project.yml")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from smoke import TINY_VARS
    finally:
        sys.path.pop(0)
    from weasel.util import load_project_config

    resolved = load_project_config(smoke, overrides={f"vars.{k}": v for k, v in TINY_VARS.items()})
    commands = {c["name"]: c for c in resolved["commands"]}
    for name in config["workflows"]["all"] + ["learning-curve"]:
        for output in commands[name].get("outputs", []):
            assert (smoke / output).exists(), f"{name} did not write {output}"
    lock = srsly.read_yaml(smoke / "project.lock")
    assert set(config["workflows"]["all"]) <= set(lock)

    # pretraining: held-out perplexity falls; the exported biLM is what the ELMo pipeline holds
    curve = [json.loads(line) for line in (smoke / "training/bilm/metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in curve] == [10, 20, 30]
    assert curve[-1]["dev_perplexity"] < curve[0]["dev_perplexity"]
    # evaluation: real scores in range, the baseline learnt something in 40 steps
    for name in ("tagger_parser_ner_baseline", "tagger_parser_ner"):
        metrics = json.loads((smoke / f"metrics/{name}.json").read_text())
        for key in ("tag_acc", "dep_uas", "dep_las", "ents_p", "ents_r", "ents_f"):
            assert 0.0 <= metrics[key] <= 1.0, (name, key, metrics[key])
        assert metrics["speed"] > 0
        assert json.loads((smoke / f"training/{name}/training_time.json").read_text())["seconds"] > 0
    assert json.loads((smoke / "metrics/tagger_parser_ner_baseline.json").read_text())["tag_acc"] > 0.3
    table = (smoke / "metrics/compare.md").read_text().splitlines()
    assert table[0] == f"**{TINY_VARS['compare_note']}**"  # a smoke run says its scores mean nothing
    assert table[2].startswith("| pipeline | TAG | UAS | LAS") and len(table) == 7
    assert (smoke / "metrics/compare.png").stat().st_size > 10_000
    # the learning curve: both twins at both sizes, a table with one row per size, a chart
    curve = json.loads((smoke / "metrics/curve/curve.json").read_text())
    assert [row["size"] for row in curve] == [50, 100]
    assert all(row["sentences"] >= row["size"] for row in curve)
    for row in curve:
        for twin in ("baseline", "ELMo"):
            assert all(0.0 <= row[twin][key] <= 1.0 for key in ("tag_acc", "dep_las", "ents_f"))
    assert len((smoke / "metrics/curve/curve.md").read_text().splitlines()) == 4
    assert (smoke / "metrics/curve/curve.png").stat().st_size > 10_000
    # the package carries the biLM weights itself
    sdist = smoke / "packages/en_elmo_ewt_smoke-0.1.0/dist/en_elmo_ewt_smoke-0.1.0.tar.gz"
    with tarfile.open(sdist) as tar:
        assert any(name.endswith("/elmo/model") for name in tar.getnames())


def test_pretrained_workflow_runs_offline_on_a_local_bilm(project):
    # The published AllenNLP weights cannot be fetched here: put the AllenNLP test-fixture biLM
    # where `spacy project assets --extra` would put the small model, and run the workflow.
    require_shared(REFERENCE)
    folder = project / "assets" / "allennlp-small"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REFERENCE / "options.json", folder / "elmo_2x1024_128_2048cnn_1xhighway_options.json")
    shutil.copyfile(REFERENCE / "lm_weights.hdf5", folder / "elmo_2x1024_128_2048cnn_1xhighway_weights.hdf5")
    tiny = ["--vars.limit", "200", "--vars.train_steps", "20", "--vars.eval_frequency", "10"]
    run(["-m", "spacy", "project", "run", "pretrained", str(project), *tiny], project)
    table = (project / "metrics/compare_allennlp-small.md").read_text()
    assert "| ELMo-small |" in table and "| baseline |" in table
    assert (project / "training/tagger_parser_ner_allennlp-small/model-best/elmo/model").exists()
