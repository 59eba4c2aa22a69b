"""``python -m spacy_elmo plot-metrics RUN_DIR [OUTPUT.png]``: the learning curve of a pretraining run.

Reads RUN_DIR/metrics.jsonl (and train_loss.jsonl when present) and draws the
training loss and held-out perplexity against tokens seen. Needs matplotlib
(``pip install spacy-elmo[plot]``).
"""
import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="OUTPUT_DIR of `pretrain` (or a metrics.jsonl)")
    parser.add_argument("output", type=Path, nargs="?", help="PNG to write (default RUN_DIR/learning_curve.png)")


def run(args: argparse.Namespace) -> int:
    metrics_path = args.run_dir if args.run_dir.is_file() else args.run_dir / "metrics.jsonl"
    if not metrics_path.is_file():
        raise ValueError(f"{metrics_path} not found: point at the OUTPUT_DIR of a pretraining run.")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plot-metrics needs matplotlib: pip install matplotlib (or spacy-elmo[plot]).") from None
    rows = [json.loads(line) for line in metrics_path.read_text(encoding="utf8").splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{metrics_path} holds no evaluations yet.")
    output = args.output or metrics_path.with_name("learning_curve.png")
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    scale, unit = (1e6, "millions") if rows[-1]["tokens"] >= 1e6 else (1e3, "thousands")
    tokens = [r["tokens"] / scale for r in rows]
    fig, (ax_loss, ax_ppl) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(tokens, [r["loss"] for r in rows], marker="o", label="train loss")
    ax_loss.set_xlabel(f"tokens ({unit})")
    ax_loss.set_ylabel("loss (nats)")
    ax_loss.set_title("training loss")
    dev = [(t, r["dev_perplexity"]) for t, r in zip(tokens, rows) if r.get("dev_perplexity")]
    if dev:
        ax_ppl.plot([t for t, _ in dev], [p for _, p in dev], marker="o", color="tab:orange")
        ax_ppl.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:,.0f}")  # 200, 300, not 2 x 10^2
        ax_ppl.yaxis.set_major_formatter(plain)
        ax_ppl.yaxis.set_minor_formatter(plain)
    ax_ppl.set_xlabel(f"tokens ({unit})")
    for ax in (ax_loss, ax_ppl):  # a handful of ticks, never run together
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax_ppl.set_ylabel("perplexity")
    ax_ppl.set_title("held-out perplexity")
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    print(f"Wrote {output}", file=sys.stderr)
    return 0
