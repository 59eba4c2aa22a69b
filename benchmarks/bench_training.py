"""Epoch times of an ELMo training config against its baseline twin.

    python benchmarks/bench_training.py --train corpus/train.spacy --elmo PATH_OR_NAME \
        --config tagger_parser_ner --epochs 3 --limit 2000

Trains with ``nlp.update`` (the same updates ``spacy train`` makes) and prints
the seconds of each epoch for: the baseline config, the ELMo config with the
frozen-feature cache (default) and without it (``cache_mb = 0``). With the
cache, epochs after the first should cost about what the baseline costs.
"""
import argparse
import time
from pathlib import Path

from spacy.training import Corpus
from spacy.training.initialize import init_nlp
from spacy.util import fix_random_seed, load_config, minibatch

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run(config_name: str, train: Path, epochs: int, limit: int, overrides: dict, batch_size: int) -> list:
    settings = {"paths.train": str(train), "paths.dev": str(train)}
    settings.update(overrides)
    config = load_config(CONFIGS / f"{config_name}.cfg", overrides=settings, interpolate=False)
    fix_random_seed(0)
    nlp = init_nlp(config)
    examples = list(Corpus(train, limit=limit)(nlp))
    optimizer = nlp.create_optimizer()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for batch in minibatch(examples, size=batch_size):
            nlp.update(batch, sgd=optimizer, drop=0.1, losses={})
        times.append(time.perf_counter() - start)
    n_words = sum(len(eg.reference) for eg in examples)
    return times, n_words


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=Path, required=True, help=".spacy training data")
    parser.add_argument("--elmo", help="biLM source (folder, name)")
    parser.add_argument("--random-bilm", choices=("small", "medium", "original"), help="instead of --elmo: random weights in the shape of a published model")
    parser.add_argument("--config", default="tagger_parser_ner")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="docs of the training data to use (0: all)")
    parser.add_argument("--batch-size", type=int, default=8, help="docs per update")
    args = parser.parse_args()
    if args.random_bilm:
        import sys
        import tempfile

        import torch

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_bilm import make_config

        from spacy_elmo.bilm import BiLM, save_bilm

        torch.manual_seed(0)
        folder = Path(tempfile.mkdtemp())
        save_bilm(BiLM(make_config(args.random_bilm)), folder / "options.json", folder / "weights.hdf5")
        args.elmo = str(folder)
    if not args.elmo:
        parser.error("give --elmo or --random-bilm")
    runs = [
        ("baseline", f"{args.config}_baseline", {}),
        ("elmo (cache)", args.config, {"paths.elmo": args.elmo}),
        ("elmo (no cache)", args.config, {"paths.elmo": args.elmo, "components.elmo.model.elmo.cache_mb": 0}),
    ]
    for label, name, overrides in runs:
        times, n_words = run(name, args.train, args.epochs, args.limit, overrides, args.batch_size)
        shown = "  ".join(f"{t:7.1f}s" for t in times)
        print(f"{label:16s} {shown}   ({n_words} words/epoch, {name}.cfg)")


if __name__ == "__main__":
    main()
