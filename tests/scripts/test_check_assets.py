"""scripts/check_assets.py: the project's preflight names what is missing and both fixes."""
import shutil
import sys

import srsly

from ..conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import check_assets  # noqa: E402

sys.path.pop(0)


def test_missing_assets_are_named_with_both_fixes(tmp_path, capsys):
    shutil.copy(ROOT / "project.yml", tmp_path / "project.yml")
    assert check_assets.main(["--project", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "assets/ud/en_ewt-ud-train.conllu" in err
    assert "python -m spacy project assets" in err and "scripts/assets_from_folder.py" in err
    assert "Traceback" not in err
    for asset in srsly.read_yaml(tmp_path / "project.yml")["assets"]:
        if not asset.get("extra"):
            (tmp_path / asset["dest"]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / asset["dest"]).write_text("x")
    assert check_assets.main(["--project", str(tmp_path)]) == 0
    assert check_assets.main(["--project", str(tmp_path), "--published", "small"]) == 1
    err = capsys.readouterr().err
    assert "elmo_2x1024_128_2048cnn_1xhighway_weights.hdf5" in err and "--extra" in err


def test_every_workflow_starts_with_the_preflight():
    workflows = srsly.read_yaml(ROOT / "project.yml")["workflows"]
    for name in ("all", "curve", "pretrained"):
        assert workflows[name][0] == "check-assets", name
    assert "check-published" in workflows["pretrained"]


def test_every_workflow_step_is_a_command_and_reuse_takes_the_kept_bilm():
    from weasel.util import load_project_config

    config = load_project_config(ROOT, overrides={"vars.bilm": "assets/bilm-cpu-3h-bf16"})
    names = {c["name"] for c in config["commands"]}
    for workflow, steps in config["workflows"].items():
        assert set(steps) <= names, workflow
    assert "pretrain" not in config["workflows"]["reuse"]
    train = next(c for c in config["commands"] if c["name"] == "train")
    assert "--paths.elmo assets/bilm-cpu-3h-bf16" in train["script"][0]
    for dep in train["deps"]:
        if dep.startswith("assets/bilm-cpu-3h-bf16/"):
            assert (ROOT / dep).is_file(), dep
