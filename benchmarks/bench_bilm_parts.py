"""Where the biLM's time goes on a corpus, batched as the ``elmo`` component batches it.

    python benchmarks/bench_bilm_parts.py assets/bilm-cpu-3h corpus/test.spacy [--threads 2] [--max-batch-items 4096] [--passes 2]

The docs of a ``.spacy`` file are cut into sentences by the component's
default span getter (``sent_or_window_spans.v2``), whitespace tokens dropped,
and grouped by ``with_spans.batches_by_length``. Each pass starts with a fresh
token cache (what ``spacy evaluate`` on a freshly loaded pipeline sees) and
prints tokens/s and the seconds spent in the token encoder (char CNN, highway,
projection, with the token cache) and in the LSTM.
"""
import argparse
import time
from pathlib import Path

import spacy
import torch
from spacy.tokens import DocBin

from spacy_elmo.layers.spans import sent_or_window_spans_v2
from spacy_elmo.layers.with_spans import batches_by_length
from spacy_elmo.loaders import load_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the biLM: a folder, an options.json path or a published name")
    parser.add_argument("docs", type=Path, help="a .spacy file (e.g. corpus/test.spacy from the project's preprocess step)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-batch-items", type=int, default=4096)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--token-cache-mb", type=float, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(doc.text) for doc in DocBin().from_disk(args.docs).get_docs(nlp.vocab)]
    texts = [[t.text for t in span if not t.is_space] for spans in sent_or_window_spans_v2()(docs) for span in spans]
    texts = [t for t in texts if t]
    n_tokens = sum(map(len, texts))
    groups = batches_by_length([len(t) for t in texts], args.max_batch_items)
    bilm = load_source(args.source).eval()
    print(f"{args.docs}: {len(texts):,} sentences, {n_tokens:,} tokens, {len(groups)} batches; threads {args.threads}")
    for index in range(args.passes):
        bilm.set_token_cache(args.token_cache_mb)
        encoder = lstm = 0.0
        start = time.perf_counter()
        with torch.no_grad():
            for group in groups:
                ids = bilm.batch_to_ids([texts[i] for i in group])
                t0 = time.perf_counter()
                lengths = (ids > 0).any(dim=-1).sum(dim=1)
                tokens = bilm._encode_unique(bilm._add_boundaries(ids, lengths))
                t1 = time.perf_counter()
                bilm.lstm(tokens, lengths + 2)
                t2 = time.perf_counter()
                encoder += t1 - t0
                lstm += t2 - t1
        total = time.perf_counter() - start
        cache = bilm.token_cache
        hits = f", token cache hit rate {cache.hit_rate:.1%}" if cache is not None else ""
        print(f"pass {index + 1}: {n_tokens / total:,.0f} tok/s ({total:.2f} s): token encoder {encoder:.2f} s, LSTM {lstm:.2f} s{hits}")


if __name__ == "__main__":
    main()
