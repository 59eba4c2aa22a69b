"""The token encoder's inference block size (``token_encoder.INFERENCE_BLOCK``):
speed per block size, and whether a token's vector stays bit for bit the same
whatever batch it comes in (what the exact token cache relies on).

    python benchmarks/bench_token_block.py --device cuda
    python benchmarks/bench_token_block.py --device cpu --blocks 32,64,128 --sentences 256

Random weights in the published shapes; sentences from a public-domain novel in
../shared (see ``bench_bilm.py``). Prints tokens/s of the whole biLM and of the
token encoder alone (best of 2 passes) per shape, batch size and block size.
"""
import argparse
import time

import torch

import spacy_elmo.bilm.token_encoder as token_encoder
from spacy_elmo.bilm import BiLM, batch_to_ids

from bench_bilm import DEFAULT_TEXT, make_config, read_sentences


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default="small,original")
    parser.add_argument("--batch-sizes", default="64,1024")
    parser.add_argument("--blocks", default="256,1024,4096,16384,65536")
    parser.add_argument("--sentences", type=int, default=4096)
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sentences = sorted(read_sentences(DEFAULT_TEXT, args.sentences), key=len)
    n_tokens = sum(map(len, sentences))
    print(f"{len(sentences)} sentences, {n_tokens} tokens, {device}")
    for shape in args.models.split(","):
        torch.manual_seed(0)
        model = BiLM(make_config(shape)).eval().to(device)
        for batch_size in map(int, args.batch_sizes.split(",")):
            batches = [batch_to_ids(sentences[i : i + batch_size]).to(device) for i in range(0, len(sentences), batch_size)]
            for block in map(int, args.blocks.split(",")):
                token_encoder.INFERENCE_BLOCK[device.type] = block
                rates = {}
                with torch.inference_mode():
                    model(batches[0])
                    for label, fn in (("biLM", lambda b: model(b).layers), ("tokens", model.token_representations)):
                        best = float("inf")
                        for _ in range(2):
                            sync()
                            start = time.perf_counter()
                            for batch in batches:
                                fn(batch)
                            sync()
                            best = min(best, time.perf_counter() - start)
                        rates[label] = n_tokens / best
                    # the same three sentences alone and inside a batch of 700
                    alone = batch_to_ids(sentences[100:103]).to(device)
                    a = model.token_representations(alone)
                    b = model.token_representations(batch_to_ids(sentences[:700]).to(device))[100:103, : a.shape[1]]
                    real = alone[..., 0] != 0
                    same = torch.equal(a[real], b[real])
                print(f"{shape:8s} batch {batch_size:5d} block {block:6d}: biLM {rates['biLM']:9.0f} tok/s  "
                      f"token encoder {rates['tokens']:9.0f} tok/s  bit-identical across batches: {same}", flush=True)


if __name__ == "__main__":
    main()
