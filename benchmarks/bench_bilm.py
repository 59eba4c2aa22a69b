"""Throughput of the biLM forward pass (inference, CPU or GPU), with random weights
in the shapes of the published models.

    python benchmarks/bench_bilm.py --model small --sentences 256 --batch-size 32

Prints tokens/s for the whole biLM and for the token encoder alone (every token
position, no de-duplication). Sentences come from a public-domain novel in
../shared when present, else a synthetic vocabulary.
"""
import argparse
import copy
import os
import random
import re
import time
from pathlib import Path

import torch

from spacy_elmo.bilm import BiLM, BiLMConfig, batch_to_ids

FILTERS_2048 = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
SHAPES = {
    "small": dict(lstm_dim=1024, projection_dim=128, n_highway=1),
    "medium": dict(lstm_dim=2048, projection_dim=256, n_highway=1),
    "original": dict(lstm_dim=4096, projection_dim=512, n_highway=2),
}


def make_config(name: str) -> BiLMConfig:
    shape = SHAPES[name]
    return BiLMConfig.from_options(
        {
            "lstm": {"dim": shape["lstm_dim"], "projection_dim": shape["projection_dim"], "n_layers": 2,
                     "cell_clip": 3, "proj_clip": 3, "use_skip_connections": True},
            "char_cnn": {"embedding": {"dim": 16}, "filters": FILTERS_2048, "n_highway": shape["n_highway"],
                         "activation": "relu", "n_characters": 262, "max_characters_per_token": 50},
        }
    )


SHARED = Path(os.environ.get("SPACY_ELMO_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
DEFAULT_TEXT = SHARED / "data/english-novels-1870-1930/Doyle_Hound_1902.txt"


def read_sentences(path: Path, n: int):
    """Up to ``n`` sentences of 3-60 tokens from a plain-text file (regex-tokenised)."""
    text = " ".join(path.read_text(encoding="utf8", errors="replace").split())
    out = []
    for chunk in re.split(r"(?<=[.!?])\s+", text):
        tokens = re.findall(r"\w+|[^\w\s]", chunk)
        if 3 <= len(tokens) <= 60:
            out.append(tokens)
        if len(out) == n:
            break
    return out


def make_sentences(n: int, seed: int = 0):
    """Synthetic fallback when no text file is available."""
    rng = random.Random(seed)
    words = ["the", "of", "and", "a", "to", "in", "is", "was", "ELMo", "representations", "contextual",
             "Paris", "1999", ",", ".", "however", "language", "model", "bidirectional", "spaCy"]
    return [[rng.choice(words) for _ in range(rng.randint(5, 40))] for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=sorted(SHAPES), default="small")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="plain text to take sentences from")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"))
    parser.add_argument("--source", help="a biLM source (folder, name) instead of random weights in --model's shape")
    parser.add_argument("--gemm", action="store_true", help="also print this machine's fp32/bf16 matmul rate (2048x2048, best of 5)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.gemm:
        from spacy_elmo.bilm.precision import bf16_is_fast

        for dtype in (torch.float32, torch.bfloat16):
            # emulated bf16 (no AVX512-BF16/AMX) is ~100x slower: measure it on a small matrix
            n = 2048 if dtype == torch.float32 or bf16_is_fast(torch.device(args.device)) else 256
            a = torch.randn(n, n, device=args.device).to(dtype)
            best = float("inf")
            for _ in range(6):
                start = time.perf_counter()
                a @ a
                best = min(best, time.perf_counter() - start)
            print(f"GEMM {n}x{n} {str(dtype).split('.')[-1]:9s} {2 * n ** 3 / best / 1e9:7.1f} GFLOP/s")
        if args.device == "cpu" and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
            # the rate of oneDNN's packed float32 product (what the inference loop uses where use_onednn() is on)
            from spacy_elmo.bilm.precision import use_onednn, onednn_linear

            a = torch.randn(2048, 2048)
            packed = torch.ops.mkldnn._reorder_linear_weight(a, None)
            best = float("inf")
            for _ in range(6):
                start = time.perf_counter()
                onednn_linear(a, packed)
                best = min(best, time.perf_counter() - start)
            print(f"GEMM 2048x2048 float32, oneDNN packed {2 * 2048 ** 3 / best / 1e9:7.1f} GFLOP/s (used: {use_onednn()})")
    torch.manual_seed(0)
    if args.source:
        from spacy_elmo.loaders import load_source

        exact_model = load_source(args.source).eval().to(args.device)
        args.model = Path(args.source).name[:8]
    else:
        exact_model = BiLM(make_config(args.model)).eval().to(args.device)
    model = copy.deepcopy(exact_model).set_precision(args.precision)
    if args.text.is_file():
        sentences = read_sentences(args.text, args.sentences)
        print(f"{len(sentences)} sentences from {args.text.name}")
    else:
        sentences = make_sentences(args.sentences)
        print(f"{len(sentences)} synthetic sentences ({args.text} not found)")
    sentences.sort(key=len)
    batches = [batch_to_ids(sentences[i : i + args.batch_size]).to(args.device)
               for i in range(0, len(sentences), args.batch_size)]
    n_tokens = sum(map(len, sentences))
    with torch.inference_mode():
        model(batches[0])  # warm-up
        for label, fn in (("biLM", lambda b: model(b).layers), ("token encoder", model.token_representations)):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            for batch in batches:
                fn(batch)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            print(f"{args.model:8s} {label:14s} {n_tokens / elapsed:10.0f} tokens/s "
                  f"({n_tokens} tokens, batch {args.batch_size}, {torch.get_num_threads()} threads, {args.device}, {args.precision})")
        if args.precision != "fp32":  # how far the fast path is from the exact one, on these sentences
            worst, cosines = 0.0, []
            for batch in batches:
                out, ref = model(batch), exact_model(batch)
                a, b = out.layers[:, out.mask], ref.layers[:, ref.mask]
                worst = max(worst, (a - b).abs().max().item())
                cosines.append(torch.nn.functional.cosine_similarity(a, b, dim=-1).flatten())
            print(f"{args.precision} vs fp32: max |diff| {worst:.4f}, mean cosine {torch.cat(cosines).mean().item():.6f}")


if __name__ == "__main__":
    main()
