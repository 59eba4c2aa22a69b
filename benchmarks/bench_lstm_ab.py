"""The LSTM's inference loop of another checkout against this one's, alternating in one process.

    git worktree add /tmp/before HEAD~1
    python benchmarks/bench_lstm_ab.py /tmp/before assets/bilm-cpu-3h corpus/test.spacy [--reps 8]
    python benchmarks/bench_lstm_ab.py /tmp/before original corpus/test.spacy --sentences 300 [--precision int8]

This machine's speed drifts by up to +-30% between runs, more than many
changes are worth; two loops timed in turns in one process on the same inputs
see the same drift. The docs are cut and batched as in ``bench_bilm_parts.py``,
token vectors computed once, then ``StackedBiLSTM`` runs every batch with the
other checkout's ``_run_layer_inference`` and with this one's, in alternating
order. Prints seconds per round for each, the ratio of each pair, the largest
output difference, and the latency of one 12-position sentence (p50).
SOURCE: a biLM source, or ``small`` / ``original`` for random weights in the
published shapes (as ``bench_bilm.py``).
"""
import argparse
import importlib.util
import sys
import time
import types
from pathlib import Path

import spacy
import torch
from spacy.tokens import DocBin

from spacy_elmo.bilm import BiLM
from spacy_elmo.bilm import lstm as this_lstm
from spacy_elmo.bilm.precision import PRECISIONS, apply_precision
from spacy_elmo.layers.spans import sent_or_window_spans_v2
from spacy_elmo.layers.with_spans import batches_by_length
from spacy_elmo.loaders import load_source

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bilm import make_config  # noqa: E402


def other_lstm(checkout: Path) -> types.ModuleType:
    path = checkout / "spacy_elmo" / "bilm" / "lstm.py"
    if not path.exists():
        sys.exit(f"{path} not found: give the root of another spacy-elmo checkout (e.g. a git worktree)")
    spec = importlib.util.spec_from_file_location("spacy_elmo.bilm._lstm_other", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its relative imports resolve to this checkout's spacy_elmo.bilm
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="root of the checkout to compare against (the 'before')")
    parser.add_argument("source", help="a biLM source, or small / original (random weights)")
    parser.add_argument("docs", type=Path, help="a .spacy file (e.g. corpus/test.spacy)")
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--sentences", type=int, default=0, help="only the first N sentences (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-batch-items", type=int, default=4096)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="the biLM's inference precision (both loops)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    before = other_lstm(args.other)
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(doc.text) for doc in DocBin().from_disk(args.docs).get_docs(nlp.vocab)]
    texts = [[t.text for t in span if not t.is_space] for spans in sent_or_window_spans_v2()(docs) for span in spans]
    texts = [t for t in texts if t][: args.sentences or None]
    groups = batches_by_length([len(t) for t in texts], args.max_batch_items)
    if args.source in ("small", "original"):
        torch.manual_seed(0)
        bilm = BiLM(make_config(args.source)).eval()
    else:
        bilm = load_source(args.source).eval()
    apply_precision(bilm, args.precision)
    inputs = []
    with torch.no_grad():
        for group in groups:
            ids = bilm.batch_to_ids([texts[i] for i in group])
            lengths = (ids > 0).any(dim=-1).sum(dim=1)
            inputs.append((bilm._encode_unique(bilm._add_boundaries(ids, lengths)), lengths + 2))
    lstm = bilm.lstm
    loops = {
        "before": types.MethodType(before.StackedBiLSTM._run_layer_inference, lstm),
        "after": types.MethodType(this_lstm.StackedBiLSTM._run_layer_inference, lstm),
    }
    print(f"{args.docs}: {len(texts):,} sentences, {sum(map(len, texts)):,} tokens, {len(groups)} batches; "
          f"before = {args.other}, after = this checkout; threads {args.threads}, precision {args.precision}")
    seconds = {name: [] for name in loops}
    outputs = {}
    with torch.no_grad():
        for rep in range(args.reps):
            order = list(loops) if rep % 2 == 0 else list(loops)[::-1]
            for name in order:
                lstm._run_layer_inference = loops[name]
                start = time.perf_counter()
                outputs[name] = [lstm(x, lengths)[0] for x, lengths in inputs]
                seconds[name].append(time.perf_counter() - start)
        diff = max((a - b).abs().max().item() for a, b in zip(outputs["before"], outputs["after"]))
        x1, l1 = inputs[0][0][:1, :12].contiguous(), torch.tensor([min(12, inputs[0][0].shape[1])])
        latency = {name: [] for name in loops}
        for _ in range(20):
            for name, loop in loops.items():
                lstm._run_layer_inference = loop
                start = time.perf_counter()
                lstm(x1, l1)
                latency[name].append(time.perf_counter() - start)
    for name, values in seconds.items():
        p50 = sorted(latency[name])[len(latency[name]) // 2] * 1e3
        print(f"{name:6s} " + " ".join(f"{v:.2f}" for v in values) + f" s | min {min(values):.2f} s | one sentence p50 {p50:.1f} ms")
    ratios = sorted(a / b for a, b in zip(seconds["after"], seconds["before"]))
    print("after / before per round: " + " ".join(f"{r:.2f}" for r in ratios) + f" (median {ratios[len(ratios) // 2]:.2f}); "
          f"max |after - before| {diff:.2e}")


if __name__ == "__main__":
    main()
