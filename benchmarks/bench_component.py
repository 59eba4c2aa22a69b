"""The `elmo` component on real short sentences: throughput, token cache, latency.

    python benchmarks/bench_component.py --model original [--threads N] [--sentences 500] [--gpu-id 0]

Random weights in the shape of a published biLM, saved as options.json +
weights.hdf5 and loaded as a source. Sentences: UD English-EWT dev (every 2nd
of the first 1,000: 500 sentences, the short sentences users have), one Doc
each, through ``nlp.pipe`` with its defaults. Prints, for the token cache off
and on: tokens/s of a first pass and of the same sentences streamed again, the
cache hit rate, whether the vectors are bit-identical to the cache-off run,
peak RSS, and the latency of one 10-token sentence through ``nlp()`` (p50/p99
over 50 calls, after 5 warm-up calls).
"""
import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy
import spacy
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bilm import make_config  # noqa: E402

from spacy_elmo.bilm import BiLM, save_bilm  # noqa: E402
from spacy_elmo.layers.bilm_wrapper import token_cache_of  # noqa: E402

SHARED = Path(os.environ.get("SPACY_ELMO_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
EWT_DEV = SHARED / "data/ud-english-ewt/en_ewt-ud-dev.conllu"


def ewt_sentences(path: Path, first: int = 1000, every: int = 2):
    """Token lists of every ``every``-th of the first ``first`` sentences (syntactic words, no multiword ranges)."""
    sentences, current = [], []
    with path.open(encoding="utf8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if current:
                    sentences.append(current)
                    current = []
                    if len(sentences) == first:
                        break
            elif not line.startswith("#"):
                cols = line.split("\t")
                if cols[0].isdigit():
                    current.append(cols[1])
    return sentences[::every]


def build(source: Path, cache_mb: float, threads: int, precision: str = "fp32", max_batch_items: int = 4096):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"source": str(source), "threads": threads, "set_vector_hooks": False,
                                 "model": {"token_cache_mb": cache_mb, "precision": precision, "max_batch_items": max_batch_items}})
    nlp.initialize()
    return nlp


def sync() -> None:
    """Wait for the GPU's queued work, so a timer reads finished work (no-op on CPU)."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def docs_of(nlp, sentences):
    return [spacy.tokens.Doc(nlp.vocab, words=words) for words in sentences]


def timed_pass(nlp, sentences):
    docs = docs_of(nlp, sentences)
    start = time.perf_counter()
    out = list(nlp.pipe(docs))
    sync()
    seconds = time.perf_counter() - start
    return sum(map(len, sentences)) / seconds, [nlp.get_pipe("elmo").model.ops.to_numpy(d.tensor) for d in out]


def latency(nlp, n_calls: int = 50):
    words = "The quick brown fox jumped over the lazy dog .".split()
    for _ in range(5):
        nlp(spacy.tokens.Doc(nlp.vocab, words=words))
    times = []
    for _ in range(n_calls):
        doc = spacy.tokens.Doc(nlp.vocab, words=words)
        start = time.perf_counter()
        nlp(doc)
        sync()
        times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("small", "medium", "original"), default="small")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0, help="the component's threads setting (0: torch's default)")
    parser.add_argument("--cache-mb", type=float, default=256)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"))
    parser.add_argument("--max-batch-items", type=int, default=4096, help="the model's max_batch_items (padded tokens per biLM batch)")
    parser.add_argument("--gpu-id", type=int, default=-1, help="run the pipeline on this GPU (spacy.require_gpu); -1: CPU")
    args = parser.parse_args()
    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    if not EWT_DEV.exists():
        sys.exit(f"{EWT_DEV} not found (needs ../shared)")
    sentences = ewt_sentences(EWT_DEV)[: args.sentences]
    n_tokens = sum(map(len, sentences))
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp)
        save_bilm(BiLM(make_config(args.model)), source / "options.json", source / "weights.hdf5")
        print(f"{args.model} ({args.precision}): {len(sentences)} EWT dev sentences, {n_tokens} tokens, "
              f"{f'GPU {args.gpu_id}' if args.gpu_id >= 0 else f'threads {args.threads or torch.get_num_threads()}'}, max_batch_items {args.max_batch_items}")
        exact = None
        for cache_mb in (0, args.cache_mb):
            nlp = build(source, cache_mb, args.threads, args.precision, args.max_batch_items)
            first, tensors = timed_pass(nlp, sentences)
            second, again = timed_pass(nlp, sentences)
            if exact is None:
                exact = tensors
            identical = all(numpy.array_equal(a, b) for a, b in zip(exact, tensors)) and all(
                numpy.array_equal(a, b) for a, b in zip(exact, again))
            cache = token_cache_of(nlp.get_pipe("elmo").bilm_layer)
            hits = f"hit rate {cache.hit_rate:.1%} ({len(cache):,} types, {cache.nbytes / 2**20:.1f} MiB)" if cache else "no cache"
            p50, p99 = latency(nlp)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"token_cache_mb={cache_mb:<6g} pass 1 {first:8,.0f} tok/s | pass 2 {second:8,.0f} tok/s | {hits} | "
                  f"identical to cache off: {identical} | 10-token nlp(): p50 {p50:.1f} ms, p99 {p99:.1f} ms | peak RSS {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
