"""Run the project's ``all`` workflow, then the ``learning-curve`` step of ``curve``, with tiny variables in ``smoke/``, in minutes.

    python scripts/smoke.py [PROJECT_DIR]

``smoke/`` is a project of its own (``project.yml``, ``configs``, ``scripts`` and
``assets`` linked from PROJECT_DIR) with its own ``project.lock``, so a smoke run
never touches the outputs, or the skip-if-unchanged record, of a real run.
"""
import os
import subprocess
import sys
from pathlib import Path

TINY_VARS = {
    "name": "elmo_ewt_smoke",
    "pretrain_config": "pretrain_tiny",
    "pretrain_seconds": 0,
    "pretrain_steps": 30,
    "pretrain_eval_every": 10,
    "pretrain_limit": 3000,
    "pretrain_dev_limit": 200,
    "n_novels": 3,
    "train_steps": 40,
    "eval_frequency": 20,
    "limit": 300,
    "curve_sizes": "50,100",
    "curve_steps": 20,
    "curve_jobs": 2,
    "compare_note": "SMOKE RUN: tiny data and 40 steps, these scores mean nothing",
}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    project = Path(argv[0] if argv else ".").resolve()
    smoke = project / "smoke"
    smoke.mkdir(exist_ok=True)
    for name in ("project.yml", "configs", "scripts", "assets"):
        link = smoke / name
        if not link.is_symlink():
            if link.exists():
                sys.exit(f"{link} exists and is not a link: remove it and rerun.")
            os.symlink(project / name, link)
    for target in ("all", "learning-curve"):
        command = [sys.executable, "-m", "spacy", "project", "run", target, str(smoke)]
        for key, value in TINY_VARS.items():
            command += [f"--vars.{key}", str(value)]
        print(" ".join(command), flush=True)
        code = subprocess.call(command)
        if code:
            sys.exit(code)


if __name__ == "__main__":
    main()
