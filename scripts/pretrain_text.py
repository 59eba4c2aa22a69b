"""Raw text for biLM pretraining: the novels (a few held out) plus the treebank's own training text.

    python scripts/pretrain_text.py NOVELS_DIR EWT_TRAIN_CONLLU OUTPUT_DIR [--held-out A,B] [--n-novels N]

Writes OUTPUT_DIR/train/ (the training novels and ``ewt-train.txt``: the ``# text =``
lines of the UD training file, one paragraph each) and OUTPUT_DIR/dev/ (the held-out
novels). Files are copied unchanged; ``spacy_elmo pretrain`` reads them paragraph by
paragraph with the sentencizer. Only the treebank's *train* text is used, so the
dev/test sentences of the downstream tasks are never seen in pretraining.
"""
import argparse
import shutil
import sys
from pathlib import Path


def treebank_text(conllu: Path) -> list:
    with conllu.open(encoding="utf8") as f:
        return [line[len("# text = ") :].strip() for line in f if line.startswith("# text = ")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("novels", type=Path, help="folder of novel .txt files")
    parser.add_argument("conllu", type=Path, help="UD EWT train .conllu (its # text = lines are added)")
    parser.add_argument("output", type=Path)
    parser.add_argument("--held-out", default="", help="comma-separated novel names (file stems) kept for dev")
    parser.add_argument("--n-novels", type=int, default=0, help="training novels to use, in name order (0: all)")
    args = parser.parse_args(argv)

    novels = sorted(args.novels.glob("*.txt"))
    if not novels:
        sys.exit(f"No .txt files in {args.novels}: run `spacy project assets` first.")
    held_out = [name for name in args.held_out.split(",") if name]
    missing = [name for name in held_out if not (args.novels / f"{name}.txt").exists()]
    if missing:
        sys.exit(f"Held-out novels not in {args.novels}: {', '.join(missing)}. Fix the project variable `held_out`.")
    train = [p for p in novels if p.stem not in held_out]
    if args.n_novels:
        train = train[: args.n_novels]
    sentences = treebank_text(args.conllu)
    if not sentences:
        sys.exit(f"No '# text =' lines in {args.conllu}: is it a UD CoNLL-U file?")

    for split in ("train", "dev"):
        shutil.rmtree(args.output / split, ignore_errors=True)
        (args.output / split).mkdir(parents=True)
    for path in train:
        shutil.copyfile(path, args.output / "train" / path.name)
    for name in held_out:
        shutil.copyfile(args.novels / f"{name}.txt", args.output / "dev" / f"{name}.txt")
    (args.output / "train" / "ewt-train.txt").write_text("\n\n".join(sentences) + "\n", encoding="utf8")
    print(f"{args.output}/train: {len(train)} novels + {len(sentences):,} treebank sentences; {args.output}/dev: {len(held_out)} novels")


if __name__ == "__main__":
    main()
