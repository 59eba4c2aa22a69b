"""Memory of an int8 pipeline: kept float32 weights (``precision = "int8"``) against ``spacy_elmo quantize``.

    python benchmarks/bench_quantize.py [--model original] [--sentences 100]

Random weights in a published shape (as ``bench_component.py``) in a pipeline
saved with ``init-pipeline``, and its int8-only copy from ``quantize``. Each
variant (fp32, int8 with the float32 weights kept, the quantized copy) is
loaded in a fresh process that runs the first SENTENCES EWT dev sentences (every
2nd of the first 1,000) through ``nlp.pipe``. Prints the pipeline folder's size,
the biLM's parameter bytes, the process's RSS after the run and its peak, per
variant, and whether the quantized copy's vectors are bit-identical to the int8
pipeline's. (Memory only: speed is ``bench_component.py --precision int8``.)
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys
import numpy, spacy, torch
sys.path.insert(0, {here!r})
from bench_component import EWT_DEV, ewt_sentences
from spacy_elmo.layers.bilm_wrapper import get_torch_bilm
from spacy_elmo.bilm.precision import INT8, INT8_BF16
path, precision, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = {{"components": {{"elmo": {{"model": {{"precision": precision}}}}}}}} if precision else {{}}
nlp = spacy.load(path, config=config)
bilm = get_torch_bilm(nlp.get_pipe("elmo").bilm_layer)
params = sum(p.numel() * p.element_size() for p in bilm.parameters())
packed = sum(torch.ops.quantized.linear_unpack(q)[0].numel() for p in bilm.parameters() for q in getattr(p, INT8, []))
packed += sum(getattr(p, INT8_BF16).numel() * 2 for p in bilm.parameters() if hasattr(p, INT8_BF16))  # projections' bf16 values
sentences = ewt_sentences(EWT_DEV)[:n]
docs = [spacy.tokens.Doc(nlp.vocab, words=s) for s in sentences]
tensors = [d.tensor for d in nlp.pipe(docs)]
numpy.save(out, numpy.concatenate(tensors))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({{"params_mib": params / 2**20, "int8_mib": packed / 2**20, "rss_now_mib": int(status["VmRSS"].split()[0]) / 1024,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("small", "medium", "original"), default="original")
    parser.add_argument("--sentences", type=int, default=100)
    args = parser.parse_args()
    import numpy
    import torch

    sys.path.insert(0, str(HERE))
    from bench_bilm import make_config

    from spacy_elmo.bilm import BiLM, save_bilm
    from spacy_elmo.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        save_bilm(BiLM(make_config(args.model)), tmp / "options.json", tmp / "weights.hdf5")
        assert cli(["init-pipeline", str(tmp / "exact"), str(tmp / "options.json"), str(tmp / "weights.hdf5")]) == 0
        assert cli(["quantize", str(tmp / "exact"), str(tmp / "int8")]) == 0
        print(f"{args.model}: {args.sentences} EWT dev sentences, one fresh process per variant")
        results = {}
        for name, path, precision in (("fp32", "exact", ""), ("int8, float32 kept", "exact", "int8"), ("quantize (int8 only)", "int8", "")):
            out = tmp / f"{len(results)}.npy"
            done = subprocess.run([sys.executable, "-c", CHILD.format(here=str(HERE)), str(tmp / path), precision, str(args.sentences), str(out)],
                                  check=True, capture_output=True, text=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            results[name] = (r, numpy.load(out))
            print(f"{name:22s} folder {folder_mib(tmp / path):7.1f} MiB | biLM params {r['params_mib']:7.1f} MiB + int8/bf16 {r['int8_mib']:6.1f} MiB | "
                  f"RSS after the run {r['rss_now_mib']:7,.0f} MiB, peak {r['rss_mib']:7,.0f} MiB")
        same = numpy.array_equal(results["int8, float32 kept"][1], results["quantize (int8 only)"][1])
        print(f"quantized copy bit-identical to the int8 pipeline: {same}")


if __name__ == "__main__":
    main()
