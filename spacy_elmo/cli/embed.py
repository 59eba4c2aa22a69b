"""``python -m spacy_elmo embed``: contextual vectors for a file of sentences, into HDF5.

The port of ``allennlp elmo``. Sentences are computed independently (fresh LSTM
state), batched by length, and written in input order: dataset ``"i"`` holds
line ``i`` (0-based).

Big corpora: ``--parts`` writes the batches into part files under
``OUTPUT.parts/`` as they are done and merges them at the end, so a killed run
continues where it stopped when run again; under ``torchrun --nproc_per_node N``
(always in parts) each process embeds its share of the batches (one GPU per
process with ``--device cuda``), and the first one merges. The file is the same
as a single process writes.
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import h5py
import numpy
import torch
from tqdm import tqdm

from ..atomic_write import atomic_path
from ..bilm import BiLM
from ..bilm.precision import check_precision
from ..distributed import Distributed
from ..errors import Errors

MODES = ("all", "top", "average")
# batches per part file of a --parts / torchrun run
PART_BATCHES = 16


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
    _check_mode(mode, batch_size)
    config = model.config
    output = Path(output)
    with _temporary(output) as tmp:
        with h5py.File(tmp, "w", track_order=True) as h5:
            datasets = []
            for index, sentence in enumerate(sentences):
                datasets.append(h5.create_dataset(str(index), shape=_shape(config, mode, len(sentence)), dtype="float32"))
            with tqdm(total=len(sentences), unit="sent", file=sys.stderr, disable=not progress, desc="embed") as bar:
                for rows in length_batches(sentences, batch_size):
                    for index, vectors in zip(rows, _embed_batch(model, [sentences[i] for i in rows], mode)):
                        if vectors is not None:
                            datasets[index][...] = vectors
                    bar.update(len(rows))
                    _stop_if_terminated()


def _check_mode(mode: str, batch_size: int) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if batch_size < 1:
        raise ValueError(Errors.E034.format(value=batch_size))


def _shape(config, mode: str, n_tokens: int) -> tuple:
    width = config.output_dim
    return (config.n_output_layers, n_tokens, width) if mode == "all" else (n_tokens, width)


def length_batches(sentences: Sequence[Sequence[str]], batch_size: int) -> List[List[int]]:
    """Sentence indices in batches of ``batch_size``, shortest sentences first (stable)."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _embed_batch(model: BiLM, batch: Sequence[Sequence[str]], mode: str) -> List[Optional[numpy.ndarray]]:
    """Per sentence: its vectors (``mode``'s shape), or ``None`` for an empty sentence."""
    if max(len(s) for s in batch) == 0:
        return [None] * len(batch)
    device = next(model.parameters()).device
    with torch.inference_mode():
        layers = model(model.batch_to_ids(batch).to(device)).layers
    if mode == "top":
        layers = layers[-1]
    elif mode == "average":
        layers = layers.mean(dim=0)
    else:
        layers = layers.transpose(0, 1)  # (batch, n_layers + 1, seq, width)
    layers = layers.float().cpu().numpy()
    out: List[Optional[numpy.ndarray]] = []
    for k, sentence in enumerate(batch):
        n = len(sentence)
        out.append((layers[k, :, :n] if mode == "all" else layers[k, :n]) if n else None)
    return out


@contextmanager
def _temporary(output: Path) -> Iterator[Path]:
    """A temporary name beside ``output`` (unique per process), renamed to
    ``output`` on success and removed on any failure, SIGTERM included."""
    previous = signal.getsignal(signal.SIGTERM) if _main_thread() else None

    def terminate(signum, frame):  # SIGTERM: stop after the current batch, clean up as for Ctrl-C
        _TERMINATED.append(signum)

    if previous is not None:
        signal.signal(signal.SIGTERM, terminate)
    try:
        with atomic_path(output) as tmp:
            yield tmp
    except OSError as err:
        raise InputError(Errors.E035.format(path=output, err=err)) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


_TERMINATED: List[int] = []


def _stop_if_terminated() -> None:
    """Raised between batches (not inside the signal handler, which may run
    where exceptions are swallowed), so the temporary file is removed."""
    if _TERMINATED:
        raise SystemExit(128 + _TERMINATED.pop())


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def parts_folder(output: Path) -> Path:
    return Path(output).with_name(Path(output).name + ".parts")


def embed_in_parts(
    model: BiLM,
    sentences: Sequence[Sequence[str]],
    output: Path,
    *,
    mode: str = "all",
    batch_size: int = 64,
    dist: Optional[Distributed] = None,
    run_id: str = "",
    progress: bool = True,
) -> int:
    """:func:`embed_sentences`, resumable and shardable.

    The length-sorted batches are grouped ``PART_BATCHES`` at a time; group
    ``g`` is embedded by rank ``g % world_size`` into ``OUTPUT.parts/g.h5``
    (written under a temporary name, so a part file is always whole). Groups
    whose file exists are skipped: rerunning a killed run continues it.
    ``run_id`` fingerprints the input, model and settings (a parts folder of
    another run is an error). Rank 0 then merges the parts into ``output`` in
    input order and removes the folder. Returns the number of groups computed here.
    """
    _check_mode(mode, batch_size)
    dist = dist or Distributed("cpu")
    output = Path(output)
    folder = parts_folder(output)
    manifest = folder / "manifest.json"
    if dist.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        if manifest.exists():
            found = json.loads(manifest.read_text(encoding="utf8")).get("run_id")
            if found != run_id:
                raise InputError(Errors.E036.format(folder=folder))
        else:
            manifest.write_text(json.dumps({"run_id": run_id, "sentences": len(sentences)}), encoding="utf8")
    dist.barrier()
    batches = length_batches(sentences, batch_size)
    groups = [batches[g : g + PART_BATCHES] for g in range(0, len(batches), PART_BATCHES)]
    mine = [g for g in range(len(groups)) if g % dist.world_size == dist.rank]
    todo = [g for g in mine if not (folder / f"{g}.h5").exists()]
    computed = 0
    total = sum(len(rows) for g in todo for rows in groups[g])
    with tqdm(total=total, unit="sent", file=sys.stderr, disable=not (progress and dist.is_main), desc="embed") as bar:
        for g in todo:
            with _temporary(folder / f"{g}.h5") as tmp, h5py.File(tmp, "w") as h5:
                for rows in groups[g]:
                    for index, vectors in zip(rows, _embed_batch(model, [sentences[i] for i in rows], mode)):
                        data = vectors if vectors is not None else numpy.zeros(_shape(model.config, mode, 0), dtype="float32")
                        h5.create_dataset(str(index), data=data)
                    bar.update(len(rows))
                    _stop_if_terminated()
            computed += 1
    dist.barrier()
    if dist.is_main:
        where = {index: g for g, group in enumerate(groups) for rows in group for index in rows}
        handles = {}
        try:
            with _temporary(output) as tmp, h5py.File(tmp, "w", track_order=True) as h5:
                for index in range(len(sentences)):
                    g = where[index]
                    if g not in handles:
                        handles[g] = h5py.File(folder / f"{g}.h5", "r")
                    h5.create_dataset(str(index), data=handles[g][str(index)][...])
        finally:
            for handle in handles.values():
                handle.close()
        shutil.rmtree(folder)
    dist.barrier()
    return computed


def run_fingerprint(sentences_path: Path, weights_paths: Sequence[Path], mode: str, batch_size: int, precision: str) -> str:
    """What a parts folder belongs to: input bytes, weight files (size, mtime) and settings."""
    digest = hashlib.sha256()
    with open(sentences_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    settings: list = []
    for path in ([weights_paths] if isinstance(weights_paths, (str, Path)) else weights_paths):
        stat = Path(path).stat()
        settings += [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]
    settings += [mode, batch_size, precision]
    digest.update(json.dumps(settings).encode())
    return digest.hexdigest()


class _ThreeOrFourPaths(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) not in (3, 4):
            parser.error(f"embed takes SOURCE INPUT OUTPUT or OPTIONS WEIGHTS INPUT OUTPUT, got {len(values)} path(s): {' '.join(values)}")
        setattr(namespace, self.dest, values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", action=_ThreeOrFourPaths,
        help="SOURCE INPUT OUTPUT, or OPTIONS WEIGHTS INPUT OUTPUT. SOURCE: any biLM source (a folder of any "
        "published layout, a .zip, an ELMoForManyLangs folder, a published name such as 'small'); INPUT: .txt "
        "(whitespace-tokenised sentence per line) or .jsonl (JSON list of tokens per line); OUTPUT: HDF5 file to "
        "write, dataset 'i' = line i")
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
    parser.add_argument("--precision", default="fp32", help="fp32 (exact, default), bf16 (weights in bfloat16: half the memory) or int8 (the LSTM's products in int8, its projections in bf16 where the CPU has native bf16; under a third of their memory; CPU only)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core)")
    parser.add_argument("--parts", action="store_true",
                        help="write finished batches to OUTPUT.parts/ and merge at the end: rerun the same command to resume a killed run "
                        "(always on under torchrun, where each process embeds its share)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def split_paths(args: argparse.Namespace) -> None:
    """``paths`` -> ``source`` (a source, or ``[options, weights]``), ``input``, ``output``."""
    paths = list(args.paths)
    if len(paths) == 4:
        args.source, args.input, args.output = [Path(paths[0]), Path(paths[1])], Path(paths[2]), Path(paths[3])
    elif len(paths) == 3:
        args.source, args.input, args.output = paths[0], Path(paths[1]), Path(paths[2])
    else:
        raise InputError(
            f"embed takes SOURCE INPUT OUTPUT or OPTIONS WEIGHTS INPUT OUTPUT, got {len(paths)} paths: {' '.join(paths)}."
        )


def model_files(source) -> List[Path]:
    """The files a source's weights are read from (what a parts folder's fingerprint covers)."""
    from ..loaders import efml_folder, resolve_source

    folder = efml_folder(source)
    if folder is not None:
        return [folder / "token_embedder.pkl", folder / "encoder.pkl"]
    return [Path(p) for p in resolve_source(source)]


def run(args: argparse.Namespace) -> int:
    if not hasattr(args, "source"):
        split_paths(args)
    if args.batch_size < 1:
        raise InputError(Errors.E034.format(value=args.batch_size))
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be a positive number of threads, got {args.threads}.")
        torch.set_num_threads(args.threads)
    for name, path in [("input", args.input)] + [("source", p) for p in (args.source if isinstance(args.source, list) else [args.source])]:
        if Path(args.output).resolve() == Path(path).resolve():
            raise InputError(Errors.E037.format(path=args.output, what=name))
    sentences = read_sentences(args.input, args.format)
    check_precision(args.precision)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = args.device
    if world_size > 1 and device == "cuda":
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    check_device(device)
    from ..loaders import load_source

    # the biLM is only run here: int8 frees the float32 weights it no longer needs
    model = load_source(args.source).to(device).set_precision(args.precision, keep_float=False)
    cache = model.set_token_cache(args.token_cache_mb)
    if args.parts or world_size > 1:
        dist = Distributed(device)
        try:
            run_id = run_fingerprint(args.input, model_files(args.source), args.mode, args.batch_size, args.precision)
            embed_in_parts(model, sentences, args.output, mode=args.mode, batch_size=args.batch_size, dist=dist, run_id=run_id, progress=not args.quiet)
        finally:
            dist.close()
        if not dist.is_main:
            return 0
    else:
        embed_sentences(model, sentences, args.output, mode=args.mode, batch_size=args.batch_size, progress=not args.quiet)
    if not args.quiet:
        hits = f", token cache hit rate {cache.hit_rate:.1%} of {cache.hits + cache.misses:,} token types" if cache else ""
        print(f"Wrote {len(sentences)} sentences ({args.mode}) to {args.output}{hits}", file=sys.stderr)
    return 0


def check_device(device: str) -> None:
    """A clear error for a device torch cannot use here (e.g. ``cuda:0`` without a GPU)."""
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise InputError(Errors.E038.format(device=device, why=err)) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(Errors.E038.format(device=device, why="torch sees no CUDA GPU here"))
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(Errors.E038.format(device=device, why=f"only {torch.cuda.device_count()} GPU(s)"))
