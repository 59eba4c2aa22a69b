"""Learning curves: both twins (ELMo and the baseline) at several training-set sizes.

    python scripts/curve.py TRAIN DEV TEST BILM OUTPUT_DIR --sizes 500,1000,3000,0 --config tagger_parser_ner [--steps 2000 | --steps 1500,1500,1500,3000] [--jobs 2] [--gpu-id N] [--section.key value ...]

For each size (training sentences from the start of TRAIN; 0 = all of it) both
``configs/CONFIG.cfg`` (ELMo from BILM) and ``configs/CONFIG_baseline.cfg`` are
trained with the same settings, model-best (selected on DEV) is evaluated on
TEST, and OUTPUT_DIR gets ``curve.md`` (table: TAG, LAS, NER F per size, ELMo −
twin), ``curve.json`` and ``curve.png`` (the three scores against training
sentences). Each finished (size, twin) is kept in OUTPUT_DIR/runs and skipped when
the command runs again, so an interrupted curve continues where it stopped (a
kept run trained for another number of steps is trained again). ``--steps`` is
one number for every size or one per size (more data usually needs more
steps); ``--jobs N`` runs N trainings at once, each with cores/N torch threads
(on a CPU machine; a GPU runs one at a time). Extra ``--section.key value``
arguments go to both trainings.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

SCORES = [("tag_acc", "TAG"), ("dep_las", "LAS"), ("ents_f", "NER F")]
TWINS = [("baseline", "{config}_baseline.cfg"), ("ELMo", "{config}.cfg")]


def parse_sizes(text: str) -> List[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sys.exit(f"--sizes must be comma-separated numbers of sentences (0 = all), got {text!r}.")
    if not sizes or any(n < 0 for n in sizes):
        sys.exit(f"--sizes must be comma-separated numbers of sentences >= 0 (0 = all), got {text!r}.")
    return sizes


def parse_steps(text: str, sizes: List[int]) -> List[int]:
    """One step count per size: ``"2000"`` for all of them or ``"1500,1500,3000"`` (0: the config's own)."""
    try:
        steps = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        sys.exit(f"--steps must be one number >= 0 or one per size ({len(sizes)} sizes: {','.join(map(str, sizes))}), got {text!r}.")
    if len(steps) == 1:
        steps = steps * len(sizes)
    if len(steps) != len(sizes) or any(n < 0 for n in steps):
        sys.exit(f"--steps must be one number >= 0 or one per size ({len(sizes)} sizes: {','.join(map(str, sizes))}), got {text!r}.")
    return steps


def count_sentences(doc) -> int:
    return sum(1 for _ in doc.sents) if doc.has_annotation("SENT_START") else 1


def write_subset(train: Path, n_sentences: int, out: Path) -> int:
    """The first docs of ``train`` holding ``n_sentences`` sentences (whole docs; 0 = all); returns the count."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(train).get_docs(nlp.vocab))
    total = sum(count_sentences(doc) for doc in docs)
    if n_sentences > total:
        sys.exit(f"Curve size {n_sentences} is larger than the training corpus {train} ({total} sentences): use sizes up to {total}, or 0 for all.")
    kept, count = [], 0
    for doc in docs:
        if n_sentences and count >= n_sentences:
            break
        kept.append(doc)
        count += count_sentences(doc)
    out.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=kept, store_user_data=True).to_disk(out)
    return count


def kept_result(run_dir: Path, steps: int) -> Optional[Dict]:
    """The finished run's result, or None when there is none or it was trained for another number of steps."""
    result_path = run_dir / "result.json"
    if not result_path.exists():
        return None
    result = json.loads(result_path.read_text(encoding="utf8"))
    if result.get("steps", steps) != steps:
        print(f"{run_dir} was trained for {result['steps']} steps, {steps} asked: training it again.", flush=True)
        return None
    return result


def train_and_evaluate(config: Path, run_dir: Path, train: Path, dev: Path, test: Path, bilm: str, steps: int,
                       args, extra: List[str], threads: int = 0) -> Dict:
    result = kept_result(run_dir, steps)
    if result is not None:
        return result
    command = [sys.executable, "-m", "spacy", "train", str(config), "--output", str(run_dir / "model"),
               "--paths.train", str(train), "--paths.dev", str(dev), "--gpu-id", str(args.gpu_id)]
    if not config.name.endswith("_baseline.cfg"):
        command += ["--paths.elmo", bilm]
    if steps:
        command += ["--training.max_steps", str(steps)]
    command += extra
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with (run_dir / "train.log").open("w", encoding="utf8") as log:
        if args.jobs > 1:  # several trainings at once: each one's output goes to its own log
            subprocess.run(command, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
        else:
            subprocess.run(command, check=True, env=env)
    seconds = time.perf_counter() - start
    metrics_path = run_dir / "test.json"
    subprocess.run([sys.executable, "-m", "spacy", "evaluate", str(run_dir / "model" / "model-best"), str(test),
                    "--output", str(metrics_path), "--gpu-id", str(args.gpu_id)], check=True, env=env,
                   stdout=subprocess.DEVNULL if args.jobs > 1 else None)
    metrics = json.loads(metrics_path.read_text(encoding="utf8"))
    result = {key: metrics.get(key) for key, _ in SCORES}
    result.update(speed=metrics.get("speed"), training_seconds=round(seconds, 1), steps=steps)
    (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    return result


def pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def markdown(rows: List[Dict]) -> str:
    head = "| train sentences | steps | " + " | ".join(f"{c} twin | {c} ELMo | {c} Δ" for _, c in SCORES) + " |"
    lines = [head, "|---|---|" + "---|" * (3 * len(SCORES))]
    for row in rows:
        cells = []
        for key, _ in SCORES:
            base, elmo = row["baseline"].get(key), row["ELMo"].get(key)
            delta = "–" if base is None or elmo is None else f"{100 * (elmo - base):+.2f}"
            cells += [pct(base), pct(elmo), delta]
        steps = row.get("steps") or "config"
        lines.append(f"| {row['sentences']:,} | {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: List[Dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SCORES), figsize=(4 * len(SCORES), 3.6))
    xs = [row["sentences"] for row in rows]
    for ax, (key, column) in zip(axes, SCORES):
        for twin, style, label in (("baseline", "o--", "twin (no ELMo)"), ("ELMo", "s-", "ELMo")):
            ys = [100 * (row[twin].get(key) or 0.0) for row in rows]
            ax.plot(xs, ys, style, label=label)
        ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{round(x / 1000, 1):g}k" if x >= 1000 else str(x) for x in xs])
        ax.minorticks_off()
        ax.set_xlabel("training sentences")
        ax.set_title(f"{column} (test)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("dev", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("bilm", help="the biLM source for the ELMo twin (folder, [options, weights] or a published name)")
    parser.add_argument("output", type=Path)
    parser.add_argument("--sizes", default="500,1000,3000,0", help="training sentences per point, comma-separated (0: all)")
    parser.add_argument("--config", default="tagger_parser_ner", help="config name in configs/ (its twin is NAME_baseline)")
    parser.add_argument("--configs-dir", type=Path, default=Path("configs"))
    parser.add_argument("--steps", default="0", help="training steps, one number or one per size, comma-separated (0: the config's own)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at once (CPU: each gets cores/jobs torch threads)")
    parser.add_argument("--gpu-id", type=int, default=-1)
    args, extra = parser.parse_known_args(argv)
    sizes = parse_sizes(args.sizes)
    steps = parse_steps(args.steps, sizes)
    if args.jobs < 1:
        sys.exit(f"--jobs must be at least 1, got {args.jobs}.")
    if args.gpu_id >= 0:
        args.jobs = 1
    for path in (args.train, args.dev, args.test):
        if not path.exists():
            sys.exit(f"{path} not found: run the `preprocess` command first.")
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else 0
    rows, jobs = [], []
    for size, n_steps in zip(sizes, steps):
        subset = args.output / "data" / f"train_{size or 'all'}.spacy"
        n = write_subset(args.train, size, subset)
        rows.append({"size": size, "sentences": n, "steps": n_steps})
        for twin, pattern in TWINS:
            config = args.configs_dir / pattern.format(config=args.config)
            run_dir = args.output / "runs" / f"{size or 'all'}_{twin}"
            jobs.append((len(rows) - 1, twin, n, n_steps, config, run_dir, subset))

    def run(job):
        index, twin, n, n_steps, config, run_dir, subset = job
        print(f"== {twin}, {n:,} training sentences, {n_steps or 'config'} steps -> {run_dir}", flush=True)
        rows[index][twin] = train_and_evaluate(config, run_dir, subset, args.dev, args.test, args.bilm, n_steps,
                                               args, extra, threads)
        print(f"== done: {twin}, {n:,} training sentences", flush=True)

    if args.jobs == 1:
        for job in jobs:
            run(job)
    else:  # the longest trainings first, so the last ones to finish are short
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run, sorted(jobs, key=lambda job: -job[3])))
    table = markdown(rows)
    (args.output / "curve.md").write_text(table, encoding="utf8")
    (args.output / "curve.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf8")
    plot(rows, args.output / "curve.png")
    print(table)


if __name__ == "__main__":
    main()
