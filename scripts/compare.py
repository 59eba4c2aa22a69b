"""Compare pipelines on test: a markdown table and a PNG chart.

    python scripts/compare.py OUTPUT_STEM --run LABEL METRICS_JSON TRAIN_DIR [--run ...]

METRICS_JSON is what ``spacy evaluate --output`` wrote; TRAIN_DIR/training_time.json
is written by ``scripts/train.py``. Writes OUTPUT_STEM.md (TAG, UAS, LAS, NER P/R/F,
words/s, training time, and the difference of each later run from the first) and
OUTPUT_STEM.png.
"""
import argparse
import json
import sys
from pathlib import Path

# (key in spacy evaluate's JSON, column, scale)
SCORES = [("tag_acc", "TAG", 100), ("dep_uas", "UAS", 100), ("dep_las", "LAS", 100),
          ("ents_p", "NER P", 100), ("ents_r", "NER R", 100), ("ents_f", "NER F", 100)]


def load_run(label: str, metrics_path: Path, train_dir: Path) -> dict:
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf8"))
    except (OSError, ValueError) as err:
        sys.exit(f"Cannot read {metrics_path} ({err}): run the `evaluate` command first.")
    time_path = train_dir / "training_time.json"
    seconds = json.loads(time_path.read_text())["seconds"] if time_path.exists() else None
    row = {"label": label, "speed": metrics.get("speed"), "seconds": seconds}
    for key, column, scale in SCORES:
        value = metrics.get(key)
        row[column] = None if value is None else value * scale
    return row


def fmt(value, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def markdown(rows: list) -> str:
    columns = [column for _, column, _ in SCORES]
    lines = ["| pipeline | " + " | ".join(columns) + " | words/s | training time |",
             "|---|" + "---|" * (len(columns) + 2)]
    for row in rows:
        cells = [fmt(row[c]) for c in columns] + [fmt(row["speed"], ",.0f"), fmt(row["seconds"], ",.0f") + " s"]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    base = rows[0]
    for row in rows[1:]:
        diffs = [fmt(None if row[c] is None or base[c] is None else row[c] - base[c], "+.2f") for c in columns]
        lines.append(f"| {row['label']} − {base['label']} | " + " | ".join(diffs) + " | | |")
    return "\n".join(lines) + "\n"


def plot(rows: list, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["TAG", "UAS", "LAS", "NER F"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), gridspec_kw={"width_ratios": [3, 1, 1]})
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        xs = [j + i * width for j in range(len(columns))]
        values = [row[c] or 0.0 for c in columns]
        bars = axes[0].bar(xs, values, width, label=row["label"])
        axes[0].bar_label(bars, fmt="%.1f", fontsize=7)
        axes[1].bar(i, row["speed"] or 0.0)
        axes[2].bar(i, row["seconds"] or 0.0)
    axes[0].set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(columns))], columns)
    axes[0].set_ylabel("test score (%)")
    top = max((row[c] or 0.0) for row in rows for c in columns)
    axes[0].set_ylim(0, max(top * 1.12, 1.0))  # room for the bar labels
    # the legend below the axes, where it covers no bar or label
    axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(rows), frameon=False)
    for ax, title in ((axes[1], "words/s (evaluate)"), (axes[2], "training time (s)")):
        ax.set_xticks(range(len(rows)), [row["label"] for row in rows], rotation=20, fontsize=8)
        ax.set_title(title, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11, color="tab:red")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="output stem: writes STEM.md and STEM.png")
    parser.add_argument("--run", nargs=3, action="append", required=True, metavar=("LABEL", "METRICS_JSON", "TRAIN_DIR"))
    parser.add_argument("--note", default="", help="a line printed above the table and as the chart's title (e.g. that a smoke run's scores mean nothing)")
    args = parser.parse_args(argv)
    rows = [load_run(label, Path(metrics), Path(train_dir)) for label, metrics, train_dir in args.run]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    if args.note:
        table = f"**{args.note}**\n\n{table}"
    args.output.with_suffix(".md").write_text(table, encoding="utf8")
    plot(rows, args.output.with_suffix(".png"), title=args.note)
    print(table)


if __name__ == "__main__":
    main()
