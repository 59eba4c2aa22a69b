"""Preflight: are the project's input files in place? One clear line each if not.

    python scripts/check_assets.py [--project DIR] [--published small|original]

Checks every non-extra asset of project.yml (the treebank, the NER files, the
novels), or with ``--published NAME`` the published AllenNLP model's two files
(the ``pretrained`` workflow). Exit 1 with the missing files and both ways to
get them: with network ``spacy project assets``, without it
``scripts/assets_from_folder.py`` (or, for a published model, copying the two
files by hand). Run first in the workflows, so an offline machine stops here
instead of inside a later step.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

import srsly


def missing_assets(project: Path, published: Optional[str] = None) -> List[str]:
    assets = srsly.read_yaml(project / "project.yml")["assets"]
    if published:
        wanted = [a for a in assets if a.get("extra") and a["dest"].startswith(f"assets/allennlp-{published}/")]
        if not wanted:
            raise SystemExit(f"project.yml has no published model {published!r} among its extra assets.")
    else:
        wanted = [a for a in assets if not a.get("extra")]
    return [a["dest"] for a in wanted if not (project / a["dest"]).is_file() or (project / a["dest"]).stat().st_size == 0]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--published", default=None, help="check the published AllenNLP model's files instead (small, original)")
    args = parser.parse_args(argv)
    missing = missing_assets(args.project, args.published)
    if not missing:
        return 0
    shown = "\n".join(f"  {dest}" for dest in missing[:8]) + (f"\n  ... and {len(missing) - 8} more" if len(missing) > 8 else "")
    if args.published:
        fix = (
            "With network: python -m spacy project assets --extra\n"
            f"Offline: copy the model's *_options.json and *_weights.hdf5 into assets/allennlp-{args.published}/ "
            "(with their published names shown above)."
        )
    else:
        fix = (
            "With network: python -m spacy project assets\n"
            "Offline, from local copies (e.g. ../shared/data): python scripts/assets_from_folder.py ../shared/data"
        )
    print(f"Missing {len(missing)} project asset(s):\n{shown}\n{fix}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
