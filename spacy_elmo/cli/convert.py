"""``python -m spacy_elmo convert-ewt``: UD EWT (CoNLL-U) + Universal NER (IOB2) -> ``.spacy``.

Entities are attached to the UD sentences by ``sent_id``; sentences UNER does
not cover (or tokenises differently) keep their entities missing. Without
``--conllu`` the IOB2 file alone gives NER-only docs.
"""
import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", type=Path, help=".spacy file to write")
    parser.add_argument("--conllu", type=Path, help="UD CoNLL-U file (trees, tags, morphology)")
    parser.add_argument("--ner", type=Path, help="Universal NER .iob2 file for the same sentences")
    parser.add_argument("--n-sents", type=int, default=10, help="sentences per doc (default 10)")
    parser.add_argument("--limit", type=int, default=0, help="first N sentences only (default all)")
    parser.add_argument("--lang", default="en")


def run(args: argparse.Namespace) -> int:
    import spacy

    from ..corpora import ewt_docs, iob2_docs, write_docbin

    if args.conllu is None and args.ner is None:
        raise ValueError("Give --conllu, --ner or both.")
    for path in (args.conllu, args.ner):
        if path is not None and not path.is_file():
            raise ValueError(f"Input file {path} not found.")
    if args.n_sents < 1:
        raise ValueError(f"--n-sents must be positive, got {args.n_sents}.")
    vocab = spacy.blank(args.lang).vocab
    if args.conllu is not None:
        docs, stats = ewt_docs(vocab, args.conllu, args.ner, n_sents=args.n_sents, limit=args.limit)
    else:
        docs, stats = iob2_docs(vocab, args.ner, n_sents=args.n_sents, limit=args.limit)
    write_docbin(docs, args.output)
    summary = ", ".join(f"{k} {v}" for k, v in stats.items())
    print(f"Wrote {len(docs)} docs to {args.output}: {summary}", file=sys.stderr)
    return 0
