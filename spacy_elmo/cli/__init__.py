"""Command line: ``python -m spacy_elmo COMMAND ...`` (also installed as ``spacy-elmo``)."""
import argparse
import importlib
import sys
from typing import List, Optional

# (command, module in this package, help). Modules are imported only when a
# command runs: `spacy --help` loads this package's CLI through the spacy_cli
# entry point and must not pay for torch models, h5py files or matplotlib.
COMMANDS = (
    ("embed", "embed", "ELMo vectors for a file of sentences, written to HDF5 (like `allennlp elmo`)"),
    ("init-pipeline", "init_pipeline", "save a spaCy pipeline with an initialized elmo component (weights inside)"),
    ("quantize", "quantize", "save a copy of a pipeline whose biLM holds its LSTM weights in int8 only (under a third of their memory)"),
    ("pretrain", "pretrain", "train your own biLM on raw text (options.json + weights.hdf5 out)"),
    ("plot-metrics", "plot_metrics", "draw the learning curve of a pretraining run to PNG"),
    ("models", "models", "list the published ELMo models known by name (and which are in the cache)"),
)


def make_parser(prog: str = "python -m spacy_elmo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="ELMo for spaCy")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(f"{__name__}.{module_name}")
        sub = commands.add_parser(
            name, help=help_text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    return parser


def main(argv: Optional[List[str]] = None, prog: str = "python -m spacy_elmo") -> int:
    from ..bilm import OptionsError, WeightFileError
    from . import embed, pretrain

    parser = make_parser(prog)
    args, extra = parser.parse_known_args(argv)
    if extra and args.func is not pretrain.run:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra) if args.func is pretrain.run else args.func(args)
    except (OptionsError, WeightFileError, embed.InputError, ValueError, OSError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
