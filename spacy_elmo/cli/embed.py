"""``python -m spacy_elmo embed``: contextual vectors for a file of sentences, into HDF5.

The port of ``allennlp elmo``. Sentences are computed independently (fresh LSTM
state), batched by length, and written in input order: dataset ``"i"`` holds
line ``i`` (0-based).
"""
import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import h5py
import torch
from tqdm import tqdm

from ..bilm import BiLM, batch_to_ids, load_bilm
from ..bilm.precision import check_precision
from ..errors import Errors

MODES = ("all", "top", "average")


class InputError(ValueError):
    """An input file that cannot be read as sentences."""


def read_sentences(path: Path, fmt: Optional[str] = None) -> List[List[str]]:
    """One token list per line: ``.txt`` split on whitespace, ``.jsonl`` a JSON list of strings.

    ``fmt`` (``"txt"`` or ``"jsonl"``) overrides the choice by file suffix. An
    empty (or blank) line is a sentence of 0 tokens in both formats.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(Errors.E030.format(path=path))
    fmt = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".json") else "txt")
    sentences: List[List[str]] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(Errors.E031.format(path=path, line=number, err=err)) from None
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]  # byte-order mark
            line = line.rstrip("\r\n")
            if fmt == "txt" or not line.strip():
                sentences.append(line.split())
                continue
            try:
                tokens = json.loads(line)
            except ValueError as err:
                raise InputError(Errors.E032.format(path=path, line=number, err=err)) from None
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise InputError(Errors.E033.format(path=path, line=number, got=_describe_json(tokens)))
            sentences.append(tokens)
    return sentences


def _describe_json(value: object) -> str:
    if isinstance(value, list):
        bad = sorted({type(v).__name__ for v in value if not isinstance(v, str)})
        return f"a list holding {', '.join(bad)}"
    return f"a JSON {type(value).__name__}"


def embed_sentences(
    model: BiLM,
    sentences: Sequence[Sequence[str]],
    output: Path,
    *,
    mode: str = "all",
    batch_size: int = 64,
    progress: bool = True,
) -> None:
    """Write one dataset per sentence to ``output`` (HDF5), in input order.

    Shapes: ``(n_layers + 1, n_tokens, 2 * projection_dim)`` for ``mode="all"``,
    ``(n_tokens, 2 * projection_dim)`` for ``"top"`` and ``"average"``; float32.
    The file appears only when complete (written under a temporary name first).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if batch_size < 1:
        raise ValueError(Errors.E034.format(value=batch_size))
    config = model.config
    width = config.output_dim
    device = next(model.parameters()).device
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    output = Path(output)
    tmp = output.with_name(output.name + ".tmp")
    try:
        with h5py.File(tmp, "w", track_order=True) as h5:
            datasets = []
            for index, sentence in enumerate(sentences):
                shape = (config.n_output_layers, len(sentence), width) if mode == "all" else (len(sentence), width)
                datasets.append(h5.create_dataset(str(index), shape=shape, dtype="float32"))
            with tqdm(total=len(sentences), unit="sent", file=sys.stderr, disable=not progress, desc="embed") as bar:
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    batch = [sentences[i] for i in rows]
                    if max(len(s) for s in batch) > 0:
                        with torch.inference_mode():
                            layers = model(batch_to_ids(batch, config.max_characters_per_token).to(device)).layers
                        if mode == "top":
                            layers = layers[-1]
                        elif mode == "average":
                            layers = layers.mean(dim=0)
                        else:
                            layers = layers.transpose(0, 1)  # (batch, n_layers + 1, seq, width)
                        layers = layers.float().cpu().numpy()
                        for k, index in enumerate(rows):
                            n = len(sentences[index])
                            if n:
                                datasets[index][...] = layers[k, :, :n] if mode == "all" else layers[k, :n]
                    bar.update(len(rows))
        tmp.replace(output)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise InputError(Errors.E035.format(path=output, err=err)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("options", type=Path, help="options.json of the biLM")
    parser.add_argument("weights", type=Path, help="weights.hdf5 of the biLM")
    parser.add_argument("input", type=Path, help=".txt (whitespace-tokenised sentence per line) or .jsonl (JSON list of tokens per line)")
    parser.add_argument("output", type=Path, help="HDF5 file to write; dataset 'i' = line i")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--all", dest="mode", action="store_const", const="all", help="all layers: (n_layers+1, n_tokens, dim) [default]")
    group.add_argument("--top", dest="mode", action="store_const", const="top", help="top layer: (n_tokens, dim)")
    group.add_argument("--average", dest="mode", action="store_const", const="average", help="average of the layers: (n_tokens, dim)")
    parser.set_defaults(mode="all")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default 64)")
    parser.add_argument("--format", choices=("txt", "jsonl"), default=None, help="input format; default from the suffix (.jsonl -> jsonl)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    parser.add_argument("--token-cache-mb", type=float, default=256,
                        help="MiB of token vectors kept across batches (exact; 0 turns the cache off; default 256)")
    parser.add_argument("--precision", default="fp32", help="fp32 (exact, default) or bf16 (weights in bfloat16: half the memory)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise InputError(Errors.E034.format(value=args.batch_size))
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be a positive number of threads, got {args.threads}.")
        torch.set_num_threads(args.threads)
    sentences = read_sentences(args.input, args.format)
    check_precision(args.precision)
    model = load_bilm(args.options, args.weights).to(args.device).set_precision(args.precision)
    cache = model.set_token_cache(args.token_cache_mb)
    embed_sentences(model, sentences, args.output, mode=args.mode, batch_size=args.batch_size, progress=not args.quiet)
    if not args.quiet:
        hits = f", token cache hit rate {cache.hit_rate:.1%} of {cache.hits + cache.misses:,} token types" if cache else ""
        print(f"Wrote {len(sentences)} sentences ({args.mode}) to {args.output}{hits}", file=sys.stderr)
    return 0
