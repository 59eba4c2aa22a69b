"""``python -m spacy_elmo init-pipeline``: a spaCy pipeline folder with an initialized ``elmo``.

The folder loads with ``spacy.load`` and holds the biLM weights itself: the
original files (and the network) are not needed afterwards.
"""
import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", type=Path, help="folder to write the pipeline to")
    parser.add_argument(
        "source",
        nargs="+",
        help="any biLM source: a folder or .zip of any published layout (bilm-tf, AllenNLP, PubMed, NLPL, "
        "ELMoForManyLangs), the two files OPTIONS WEIGHTS, or a published name (python -m spacy_elmo models)",
    )
    parser.add_argument("--lang", default="en", help="spaCy language of the blank pipeline (default en)")
    parser.add_argument("--sentencizer", action="store_true", help="add a sentencizer first, so the biLM reads sentences")
    parser.add_argument("--mix", default="scalar", choices=("scalar", "average", "top", "all"), help="how layers are combined (default scalar)")


def run(args: argparse.Namespace) -> int:
    import spacy

    source = args.source[0] if len(args.source) == 1 else [str(Path(p)) for p in args.source]
    if isinstance(source, list) and len(source) != 2:
        raise ValueError(f"Give one source or the two files OPTIONS WEIGHTS, got {len(source)} paths.")
    nlp = spacy.blank(args.lang)
    if args.sentencizer:
        nlp.add_pipe("sentencizer")
    nlp.add_pipe("elmo", config={"source": source, "model": {"mix": args.mix}})
    nlp.initialize()
    nlp.to_disk(args.output)
    width = nlp.get_pipe("elmo").model.get_dim("nO")
    print(f"Saved pipeline {nlp.pipe_names} to {args.output} (doc.tensor width {width})", file=sys.stderr)
    return 0
