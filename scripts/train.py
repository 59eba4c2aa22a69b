"""``spacy train`` that also records its wall-clock time.

    python scripts/train.py CONFIG OUTPUT_DIR [--gpu-id N] [--section.key value ...]

Same arguments as ``python -m spacy train CONFIG --output OUTPUT_DIR``; afterwards
OUTPUT_DIR/training_time.json holds ``{"seconds": ...}`` for ``scripts/compare.py``.
"""
import argparse
import json
import time
from pathlib import Path

from spacy.cli._util import parse_config_overrides
from spacy.cli.train import train


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--gpu-id", type=int, default=-1)
    args, rest = parser.parse_known_args(argv)
    overrides = parse_config_overrides(rest)
    start = time.perf_counter()
    train(args.config, args.output, use_gpu=args.gpu_id, overrides=overrides)
    seconds = time.perf_counter() - start
    (args.output / "training_time.json").write_text(json.dumps({"seconds": round(seconds, 1), "gpu_id": args.gpu_id}) + "\n")
    print(f"Training took {seconds:,.0f} s")


if __name__ == "__main__":
    main()
