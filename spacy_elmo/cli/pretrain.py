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
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoints/last.pt")
    parser.add_argument("--device", default=None, help="torch device (default: cuda:LOCAL_RANK when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


REQUIRED = {
    "paths": ("train", "dev"),
    "corpus": ("lang", "sentences", "max_length", "limit", "dev_limit"),
    "model": ("char_embedding_dim", "filters", "n_highway", "activation", "lstm_dim", "projection_dim", "n_layers",
              "cell_clip", "proj_clip", "use_skip_connections", "dropout"),
    "vocab": ("max_size", "min_count", "softmax"),
    "training": ("seed", "batch_tokens", "max_steps", "eval_every", "checkpoint_every", "optimizer", "learn_rate", "grad_clip"),
}


def check_config(config, path) -> None:
    """Every section and key the pretraining loop reads, with a pointer to the presets."""
    for section, keys in REQUIRED.items():
        if section not in config:
            raise ValueError(f"Config {path} has no [{section}] section; start from configs/pretrain_tiny.cfg.")
        missing = [k for k in keys if k not in config[section]]
        if missing:
            raise ValueError(f"Config {path}: [{section}] lacks {', '.join(missing)}; see configs/pretrain_tiny.cfg.")
    for section, key in (("training", "batch_tokens"), ("training", "max_steps"), ("training", "eval_every"), ("training", "checkpoint_every"), ("corpus", "max_length")):
        value = config[section][key]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Config {path}: {section}.{key} must be a positive integer, got {value!r}.")


def run(args: argparse.Namespace, overrides=()) -> int:
    from spacy.cli._util import parse_config_overrides
    from spacy.util import load_config

    from ..pretrain.train import pretrain

    if not args.config.is_file():
        raise ValueError(f"Config file {args.config} not found.")
    try:
        config = load_config(args.config, overrides=parse_config_overrides(list(overrides)), interpolate=True)
    except Exception as err:  # confection's parser and override errors
        raise ValueError(f"Config {args.config} could not be read: {err}") from None
    check_config(config, args.config)
    if not config["paths"].get("train"):
        raise ValueError("No training text: pass --paths.train PATH (a file or folder of .txt, .jsonl or .spacy).")
    metrics = pretrain(config, args.output_dir, resume=args.resume, device=args.device, progress=not args.quiet)
    if metrics and not args.quiet:
        print(f"Saved the biLM to {args.output_dir / 'model'} (last evaluation: {metrics})", file=sys.stderr)
    return 0
