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
    parser.add_argument("--init", default=None, metavar="SOURCE",
                        help="continue pretraining a biLM (an elmo source: folder, options.json path or published name); "
                        "its architecture replaces [model]'s, the softmax and vocabulary are new")
    parser.add_argument("--freeze-steps", type=int, default=0,
                        help="with --init: train only the top LSTM layer and the softmax for the first N steps")
    parser.add_argument("--device", default=None, help="torch device (default: cuda:LOCAL_RANK when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, overrides=()) -> int:
    from spacy.cli._util import parse_config_overrides
    from spacy.util import load_config

    from ..pretrain.schema import check_config
    from ..pretrain.train import ARCHITECTURE_KEYS, pretrain, saved_config

    if not args.config.is_file():
        raise ValueError(f"Config file {args.config} not found.")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in OUTPUT_DIR, --overwrite replaces it: give one of them.")
    try:
        config = load_config(args.config, overrides=parse_config_overrides(list(overrides)), interpolate=True)
    except Exception as err:  # confection's parser and override errors
        raise ValueError(f"Config {args.config} could not be read: {err}") from None
    check_config(config, args.config)
    init = None
    if args.freeze_steps < 0 or (args.freeze_steps and not args.init):
        raise ValueError("--freeze-steps needs --init and a number of steps >= 0.")
    if args.init:
        init = _init_from(args.init, config, overrides)
    if args.resume:  # the run's own corpus and architecture unless given again
        saved = saved_config(args.output_dir)
        for key, value in saved.get("paths", {}).items():
            if value and not config["paths"].get(key):
                config["paths"][key] = value
        given = {arg[len("--model."):].partition("=")[0] for arg in overrides if arg.startswith("--model.")}
        for key in ARCHITECTURE_KEYS:
            if key in saved.get("model", {}) and key not in given:
                config["model"][key] = saved["model"][key]
    if not config["paths"].get("train"):
        raise ValueError("No training text: pass --paths.train PATH (a file or folder of .txt, .jsonl or .spacy).")
    metrics = pretrain(
        config, args.output_dir, resume=args.resume, overwrite=args.overwrite, init=init, freeze_steps=args.freeze_steps,
        device=args.device, progress=not args.quiet,
    )
    if metrics and not args.quiet:
        print(f"Saved the biLM to {args.output_dir / 'model'} (last evaluation: {metrics})", file=sys.stderr)
    return 0


def _init_from(source, config, overrides):
    """Load the biLM to continue from and put its architecture into ``config["model"]``;
    a ``--model.*`` override that contradicts it is an error naming both values."""
    from ..bilm import load_bilm, load_efml
    from ..loaders import efml_folder, resolve_source
    from ..pretrain.train import model_section

    folder = efml_folder(source)
    if folder is not None:  # ELMoForManyLangs: its dictionaries come along, the export is an EFML folder
        bilm, where = load_efml(folder), folder
    else:
        options, weights = resolve_source(source)
        bilm, where = load_bilm(options, weights), options.parent
    given = {}
    for i, arg in enumerate(overrides):
        if arg.startswith("--model."):
            key, _, value = arg[len("--model."):].partition("=")
            given[key] = value if value else (overrides[i + 1] if i + 1 < len(overrides) else "")
    source_model = model_section(bilm.config)
    for key, value in source_model.items():
        if key in given and str(config["model"][key]) != str(value) and config["model"][key] != value:
            raise ValueError(
                f"--init {source}: its biLM has model.{key} = {value!r}, but --model.{key} {given[key]} was given. "
                f"The architecture comes from the biLM: drop the override."
            )
        config["model"][key] = value
    print(f"Continuing from {where} ({bilm.config.n_layers}x{bilm.config.lstm_dim}_{bilm.config.projection_dim}); new softmax and vocabulary.", file=sys.stderr)
    return bilm

