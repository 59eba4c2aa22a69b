"""``python -m spacy_elmo models``: the published ELMo models known by name, and which are in the cache.

A name works everywhere a source does (``source = "pubmed"``, ``embed``,
``pretrain --init``); it is downloaded once into the cache folder
(``$SPACY_ELMO_CACHE``, default ``~/.cache/spacy-elmo``). The list is the data
file ``spacy_elmo/models.json``.
"""
import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON lines")


def run(args: argparse.Namespace) -> int:
    from ..loaders import cache_dir, catalogue, published_urls

    rows = []
    for row in catalogue():
        folder = cache_dir() / row["name"]
        cached = all((folder / filename).is_file() for filename in published_urls(row["name"]))
        rows.append({**row, "cached": cached})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = f"{'name':<15} {'lang':<5} {'width':>6} {'MB':>5}  {'cached':<6}  description"
    print(header)
    print("-" * len(header))
    for row in rows:
        width = row["width"] or "?"
        size = row["size_mb"] or "?"
        print(f"{row['name']:<15} {row['language']:<5} {width:>6} {size:>5}  {'yes' if row['cached'] else 'no':<6}  {row['description']}")
    print(f"\nCache: {cache_dir()} (set $SPACY_ELMO_CACHE to move it)", file=sys.stderr)
    return 0
