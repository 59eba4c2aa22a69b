"""The project's training data: UD English-EWT trees with Universal NER entities, as ``.spacy``.

    python scripts/convert_ewt.py OUTPUT.spacy [--conllu FILE.conllu] [--ner FILE.iob2] [--n-sents 10] [--limit N]

Project data preparation (used by ``project.yml``'s ``preprocess``), not part of
the plugin. Without ``--conllu`` the IOB2 file alone gives NER-only docs.

UNER's ``.iob2`` files are not CoNLL-U: 5 tab-separated columns (index, word,
IOB2 tag, ``-``, annotator) with the same ``# sent_id`` as UD EWT. Entities are
attached to the UD sentences **by sent_id**; a sentence whose UNER words differ
from the UD words (or that UNER lacks) keeps its entities *missing* (not "O"),
so the NER model neither learns nor is scored on it.

The draft UNER train file carries extra labels (``OTH``, a spurious ``O``
type); they become ``O``, as in the released data.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

PathLike = Union[str, Path]
NER_LABELS = ("PER", "ORG", "LOC")


class ConllSentence:
    __slots__ = ("sent_id", "words", "spaces", "lemmas", "pos", "tags", "morphs", "heads", "deps")

    def __init__(self, sent_id: str) -> None:
        self.sent_id = sent_id
        self.words: List[str] = []
        self.spaces: List[bool] = []
        self.lemmas: List[str] = []
        self.pos: List[str] = []
        self.tags: List[str] = []
        self.morphs: List[str] = []
        self.heads: List[int] = []
        self.deps: List[str] = []


def read_conllu(path: PathLike) -> Iterator[ConllSentence]:
    """Sentences of a CoNLL-U file: syntactic words only (no multiword ranges, no empty nodes)."""
    sentence: Optional[ConllSentence] = None
    multiword_end = -1
    with Path(path).open(encoding="utf8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line:
                if sentence is not None and sentence.words:
                    yield sentence
                sentence = None
                multiword_end = -1
                continue
            if line.startswith("#"):
                if line.startswith("# sent_id"):
                    sentence = ConllSentence(line.split("=", 1)[1].strip())
                continue
            if sentence is None:
                sentence = ConllSentence(f"{Path(path).name}:{number}")
                multiword_end = -1
            cols = line.split("\t")
            if len(cols) != 10:
                raise ValueError(f"{path}, line {number}: expected 10 tab-separated CoNLL-U columns, got {len(cols)}")
            index = cols[0]
            if "." in index:
                continue  # empty node of the enhanced graph
            if "-" in index:
                start, end = index.split("-")
                multiword_end = int(end)
                # the range line carries SpaceAfter for the whole multiword token
                multiword_space = "SpaceAfter=No" not in cols[9]
                continue
            i = int(index)
            sentence.words.append(cols[1])
            sentence.lemmas.append(cols[2] if cols[2] != "_" else "")
            sentence.pos.append(cols[3])
            sentence.tags.append(cols[4] if cols[4] != "_" else "")
            sentence.morphs.append(cols[5] if cols[5] != "_" else "")
            head = int(cols[6])
            sentence.heads.append(head - 1 if head else i - 1)
            sentence.deps.append(cols[7])
            if i < multiword_end:
                sentence.spaces.append(False)
            elif i == multiword_end:
                sentence.spaces.append(multiword_space)
            else:
                sentence.spaces.append("SpaceAfter=No" not in cols[9])
    if sentence is not None and sentence.words:
        yield sentence


def read_iob2(path: PathLike) -> Dict[str, Tuple[List[str], List[str]]]:
    """UNER ``.iob2``: ``{sent_id: (words, IOB2 tags)}``, draft-only labels mapped to ``O``."""
    out: Dict[str, Tuple[List[str], List[str]]] = {}
    sent_id: Optional[str] = None
    words: List[str] = []
    tags: List[str] = []

    def flush() -> None:
        if sent_id is not None and words:
            out[sent_id] = (list(words), _repair_iob(tags))

    with Path(path).open(encoding="utf8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line:
                flush()
                sent_id, words, tags = None, [], []
                continue
            if line.startswith("#"):
                if line.startswith("# sent_id"):
                    sent_id = line.split("=", 1)[1].strip()
                continue
            cols = line.split("\t")
            if len(cols) < 3:
                raise ValueError(f"{path}, line {number}: expected at least 3 tab-separated columns (index, word, tag)")
            words.append(cols[1])
            tags.append(cols[2])
    flush()
    return out


def _repair_iob(tags: List[str]) -> List[str]:
    """Map labels outside PER/ORG/LOC to O and keep the sequence valid IOB2."""
    out = []
    previous = "O"
    for tag in tags:
        if tag == "O" or "-" not in tag or tag.split("-", 1)[1] not in NER_LABELS:
            tag = "O"
        elif tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def ewt_docs(
    vocab: Vocab,
    conllu: PathLike,
    iob2: Optional[PathLike] = None,
    *,
    n_sents: int = 10,
    limit: int = 0,
) -> Tuple[List[Doc], Dict[str, int]]:
    """Docs of ``n_sents`` UD sentences each (first ``limit`` sentences if > 0),
    with UNER entities where the sentence aligns. Returns the docs and counts."""
    entities = read_iob2(iob2) if iob2 else {}
    stats = {"sentences": 0, "words": 0, "ner_aligned": 0, "ner_missing": 0, "entities": 0}
    sentences: List[Doc] = []
    for sentence in read_conllu(conllu):
        if limit and stats["sentences"] >= limit:
            break
        ents = None
        if iob2:
            words_tags = entities.get(sentence.sent_id)
            if words_tags is not None and words_tags[0] == sentence.words:
                ents = words_tags[1]
                stats["ner_aligned"] += 1
                stats["entities"] += sum(tag.startswith("B-") for tag in ents)
            else:
                stats["ner_missing"] += 1
        doc = Doc(
            vocab,
            words=sentence.words,
            spaces=sentence.spaces,
            lemmas=sentence.lemmas,
            pos=sentence.pos,
            tags=sentence.tags,
            morphs=sentence.morphs,
            heads=sentence.heads,
            deps=sentence.deps,
            sent_starts=[True] + [False] * (len(sentence.words) - 1),
            ents=ents,
        )
        sentences.append(doc)
        stats["sentences"] += 1
        stats["words"] += len(doc)
    return _group(sentences, n_sents), stats


def iob2_docs(vocab: Vocab, iob2: PathLike, *, n_sents: int = 10, limit: int = 0) -> Tuple[List[Doc], Dict[str, int]]:
    """Docs from a UNER ``.iob2`` file alone (entities only, no trees)."""
    stats = {"sentences": 0, "words": 0, "entities": 0}
    sentences: List[Doc] = []
    for words, tags in read_iob2(iob2).values():
        if limit and stats["sentences"] >= limit:
            break
        sentences.append(Doc(vocab, words=words, ents=tags, sent_starts=[True] + [False] * (len(words) - 1)))
        stats["sentences"] += 1
        stats["words"] += len(words)
        stats["entities"] += sum(tag.startswith("B-") for tag in tags)
    return _group(sentences, n_sents), stats


def _group(sentences: List[Doc], n_sents: int) -> List[Doc]:
    """Join every ``n_sents`` sentence docs into one doc."""
    return [Doc.from_docs(sentences[i : i + n_sents], ensure_whitespace=True) for i in range(0, len(sentences), n_sents)]


def write_docbin(docs: List[Doc], path: PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=False).to_disk(path)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help=".spacy file to write")
    parser.add_argument("--conllu", type=Path, help="UD CoNLL-U file (trees, tags, morphology)")
    parser.add_argument("--ner", type=Path, help="Universal NER .iob2 file for the same sentences")
    parser.add_argument("--n-sents", type=int, default=10, help="sentences per doc (default 10)")
    parser.add_argument("--limit", type=int, default=0, help="first N sentences only (default all)")
    parser.add_argument("--lang", default="en")
    return parser


def run(args: argparse.Namespace) -> int:
    import spacy

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


def main(argv: Optional[List[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
