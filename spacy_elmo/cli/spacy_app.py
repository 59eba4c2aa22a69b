"""``spacy elmo COMMAND ...``: the same commands inside spaCy's own CLI.

Registered through the ``spacy_cli`` entry point: when spaCy's CLI starts it loads
that entry point, and importing this module adds an ``elmo`` group to spaCy's typer
app. Each command hands its arguments unchanged to the argparse CLI
(``spacy_elmo.cli.main``), so ``spacy elmo pretrain CONFIG OUT --training.max_steps 10``
and ``python -m spacy_elmo pretrain ...`` are one implementation.
"""
import sys

import typer
from spacy.cli._util import app

from . import COMMANDS, main

elmo_cli = typer.Typer(name="elmo", help="ELMo for spaCy: embed, init-pipeline, quantize, pretrain, plot-metrics, models", no_args_is_help=True)
app.add_typer(elmo_cli)

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _forward(name: str):
    def command(ctx: typer.Context) -> None:
        code = main([name, *ctx.args], prog="spacy elmo")
        if code:
            sys.exit(code)

    command.__name__ = name.replace("-", "_")
    return command


for _name, _module, _help in COMMANDS:
    elmo_cli.command(_name, help=_help, context_settings=PASS_THROUGH, add_help_option=False)(_forward(_name))
