"""``python -m spacy_elmo pretrain CONFIG OUTPUT_DIR [--section.key value ...]``: train a biLM on raw text.

Overrides work as for ``spacy train`` (``--paths.train corpus.txt --training.max_steps 1000``).
OUTPUT_DIR gets ``model/`` (options.json + weights.hdf5 + vocab.txt, usable as
an ``elmo`` source and by ``embed``), ``checkpoints/`` and ``metrics.jsonl``.
``--resume`` continues from the last checkpoint exactly. Launch with
``torchrun --nproc_per_node N -m spacy_elmo pretrain ...`` to use N processes.
"""
import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="pretraining config, e.g. configs/pretrain_tiny.cfg")
    parser.add_argument("output_dir", type=Path, help="folder for model/, checkpoints/ and metrics.jsonl")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUTPUT_DIR/checkpoints/last.pt (the run's own --paths.train/--paths.dev unless given again)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in an OUTPUT_DIR that holds another run (its checkpoint is replaced)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda:LOCAL_RANK when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, overrides=()) -> int:
    from spacy.cli._util import parse_config_overrides
    from spacy.util import load_config

    from ..pretrain.schema import check_config
    from ..pretrain.train import pretrain, saved_paths

    if not args.config.is_file():
        raise ValueError(f"Config file {args.config} not found.")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in OUTPUT_DIR, --overwrite replaces it: give one of them.")
    try:
        config = load_config(args.config, overrides=parse_config_overrides(list(overrides)), interpolate=True)
    except Exception as err:  # confection's parser and override errors
        raise ValueError(f"Config {args.config} could not be read: {err}") from None
    check_config(config, args.config)
    if args.resume:  # the run's own corpus unless given again
        for key, value in saved_paths(args.output_dir).items():
            if not config["paths"].get(key):
                config["paths"][key] = value
    if not config["paths"].get("train"):
        raise ValueError("No training text: pass --paths.train PATH (a file or folder of .txt, .jsonl or .spacy).")
    metrics = pretrain(config, args.output_dir, resume=args.resume, overwrite=args.overwrite, device=args.device, progress=not args.quiet)
    if metrics and not args.quiet:
        print(f"Saved the biLM to {args.output_dir / 'model'} (last evaluation: {metrics})", file=sys.stderr)
    return 0
