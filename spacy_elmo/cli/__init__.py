"""Command line: ``python -m spacy_elmo COMMAND ...`` (also installed as ``spacy-elmo``)."""
import argparse
import sys
from typing import List, Optional

from ..bilm import OptionsError, WeightFileError
from . import convert, embed, init_pipeline


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spacy_elmo", description="ELMo for spaCy")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    embed_parser = commands.add_parser(
        "embed",
        help="ELMo vectors for a file of sentences, written to HDF5 (like `allennlp elmo`)",
        description=embed.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_arguments(embed_parser)
    embed_parser.set_defaults(func=embed.run)
    init_parser = commands.add_parser(
        "init-pipeline",
        help="save a spaCy pipeline with an initialized elmo component (weights inside)",
        description=init_pipeline.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init_pipeline.add_arguments(init_parser)
    init_parser.set_defaults(func=init_pipeline.run)
    convert_parser = commands.add_parser(
        "convert-ewt",
        help="UD English-EWT trees + Universal NER entities -> .spacy training data",
        description=convert.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_arguments(convert_parser)
    convert_parser.set_defaults(func=convert.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OptionsError, WeightFileError, embed.InputError, ValueError, OSError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
