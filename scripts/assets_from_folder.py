"""Put the project's assets in place from local copies, for machines without internet.

    python scripts/assets_from_folder.py FOLDER [--project DIR] [--link]

Every non-extra asset of project.yml is looked up by file name anywhere under
FOLDER (e.g. ``../shared/data``); when several files share the name, the one whose
md5 matches the asset's checksum is taken. Files are copied (``--link``: symlinked)
to the asset's ``dest``. Afterwards ``python -m spacy project assets`` verifies every
checksum and downloads nothing.
"""
import argparse
import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import srsly
from weasel.util import get_checksum  # what `spacy project assets` verifies with


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--link", action="store_true", help="symlink instead of copying")
    args = parser.parse_args(argv)
    assets = [a for a in srsly.read_yaml(args.project / "project.yml")["assets"] if not a.get("extra")]
    by_name = defaultdict(list)
    for path in args.folder.rglob("*"):
        if path.is_file():
            by_name[path.name].append(path)
    missing = []
    for asset in assets:
        candidates = by_name.get(Path(asset["dest"]).name, [])
        if len(candidates) > 1:
            candidates = [p for p in candidates if get_checksum(p) == asset.get("checksum")]
        if not candidates:
            missing.append(asset["dest"])
            continue
        dest = args.project / asset["dest"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists() or dest.is_symlink():
            dest.unlink()
        if args.link:
            os.symlink(candidates[0].resolve(), dest)
        else:
            shutil.copyfile(candidates[0], dest)
    print(f"{len(assets) - len(missing)} of {len(assets)} assets placed from {args.folder}")
    if missing:
        sys.exit("Not found under {}: {}".format(args.folder, ", ".join(missing)))


if __name__ == "__main__":
    main()
