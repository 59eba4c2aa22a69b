"""Pretraining step speed: tokens/s and where a step's time goes.

Runs ``--steps`` training steps of ``--batch-tokens`` tokens (Adam, gradient
clipping, dropout as in the preset) on the given text, after one warm-up step,
and prints tokens/s, the losses (to compare two versions of the code: the same
batches give the same losses) and the seconds per step spent in each part::

    python benchmarks/bench_pretrain_step.py --preset pretrain_cpu --threads 2 \\
        --text corpus/pretrain/train/ewt-train.txt corpus/pretrain/train/Doyle_Lost_1912.txt

(the two files are what the project's ``preprocess`` step writes: EWT train
sentences and one novel). Keep other work off the machine while it runs.
"""
import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch
from spacy.util import load_config

from spacy_elmo.bilm import BiLM
from spacy_elmo.pretrain.data import epoch_batches, read_sentences
from spacy_elmo.pretrain.objective import BiLMLanguageModel
from spacy_elmo.pretrain.train import bilm_config, training_autocast
from spacy_elmo.pretrain.vocab import WordVocab

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEXT = [ROOT / "corpus/pretrain/train/ewt-train.txt", ROOT / "corpus/pretrain/train/Doyle_Lost_1912.txt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="pretrain_cpu", help="a configs/pretrain_*.cfg name")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--length-buckets", type=int, default=0, help="training.length_buckets (0: random batches)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="training.precision (bf16: autocast, on CPUs with native bf16)")
    parser.add_argument("--text", type=Path, nargs="+", default=DEFAULT_TEXT, help="sentence-per-paragraph text files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(ROOT / "configs" / f"{args.preset}.cfg", interpolate=True)
    train = [s for path in args.text for s in read_sentences(path, lang="en", sentences="sentencizer", max_length=100)]
    vocab = WordVocab.build(train, max_size=50000)
    torch.manual_seed(0)
    lm = BiLMLanguageModel(BiLM(bilm_config(cfg["model"])), vocab, dropout=cfg["model"]["dropout"], softmax="adaptive")
    optimizer = torch.optim.Adam(lm.parameters(), lr=cfg["training"]["learn_rate"])
    batches = epoch_batches(train, args.batch_tokens, 0, 0, args.length_buckets)
    autocast = training_autocast(args.precision, torch.device("cpu"))
    seconds = defaultdict(float)

    def timed(name, fn):
        def run(*a, **k):
            start = time.perf_counter()
            out = fn(*a, **k)
            seconds[name] += time.perf_counter() - start
            return out

        return run

    lm.bilm.token_encoder.forward = timed("char CNN forward", lm.bilm.token_encoder.forward)
    lm.bilm.lstm.forward = timed("LSTM forward", lm.bilm.lstm.forward)
    lm.softmax.forward = timed("softmax forward", lm.softmax.forward)

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        with autocast:
            out = lm([train[i] for i in batch])
        seconds["forward (all)"] += time.perf_counter() - start
        start = time.perf_counter()
        out.loss.backward()
        seconds["backward"] += time.perf_counter() - start
        start = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), cfg["training"]["grad_clip"])
        optimizer.step()
        seconds["optimizer"] += time.perf_counter() - start
        return sum(len(train[i]) for i in batch), out.loss.item()

    step(batches[0])  # warm-up
    seconds.clear()
    start, n_tokens, losses = time.perf_counter(), 0, []
    for batch in batches[1 : 1 + args.steps]:
        n, loss = step(batch)
        n_tokens += n
        losses.append(round(loss, 4))
    elapsed = time.perf_counter() - start
    print(f"{args.preset}: {n_tokens / elapsed:,.0f} tokens/s, {elapsed / args.steps:.2f} s/step, {args.threads} threads, "
          f"length_buckets {args.length_buckets}, {args.precision}; losses {losses}")
    print("seconds per step: " + ", ".join(f"{k} {v / args.steps:.3f}" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
