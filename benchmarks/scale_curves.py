"""docs/img/scale.png and the table of docs/scale.md: each pipeline stage's wall time and peak memory against the rows
read, from the committed ``benchmarks/results/scale-*.json`` (each written by ``python benchmarks/run.py --full
--skip ... --sessions-per-month N --output benchmarks/results/scale-N.json``, see docs/scale.md).

    python benchmarks/scale_curves.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("download", "filter_encode", "split", "build_graphs", "train", "evaluate")


def scale_table(runs: list) -> str:
    """One row per run: its size, then each stage's seconds and peak GiB."""
    stages = [st for st in STAGES if any(f"pipeline.{st}.seconds" in r for r in runs)]
    disk = all("pipeline.filter_encode.tmp_peak_mib" in r for r in runs)
    head = ["rows read", "rows kept", "sessions", "training examples",
            *(f"{st} s / GiB" for st in stages), *(["filter_encode temp disk / CSV in, GiB"] if disk else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        cells = [f"{r['pipeline.data.rows_read']:,}", f"{r['pipeline.data.rows_kept']:,}",
                 f"{r['pipeline.data.sessions']:,}", f"{r['pipeline.data.graph_examples.train']:,}"]
        cells += [f"{r[f'pipeline.{st}.seconds']:.0f} / {r[f'pipeline.{st}.peak_mib'] / 1024:.1f}"
                  if f"pipeline.{st}.seconds" in r else "" for st in stages]
        if disk:
            tmp_gib, raw_gib = r["pipeline.filter_encode.tmp_peak_mib"] / 1024, r["pipeline.data.raw_mib"] / 1024
            cells.append(f"{tmp_gib:.1f} / {raw_gib:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    runs = sorted((json.loads(p.read_text()) for p in (ROOT / "benchmarks" / "results").glob("scale-*.json")),
                  key=lambda r: r["pipeline.data.rows_read"])
    if not runs:
        raise SystemExit("no benchmarks/results/scale-*.json: run the commands in docs/scale.md first")
    rows = [r["pipeline.data.rows_read"] for r in runs]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for stage in STAGES:
        have = [(n, r) for n, r in zip(rows, runs) if f"pipeline.{stage}.seconds" in r]
        if not have:
            continue
        xs = [n for n, _ in have]
        ax_t.plot(xs, [r[f"pipeline.{stage}.seconds"] for _, r in have], "o-", label=stage)
        ax_m.plot(xs, [r[f"pipeline.{stage}.peak_mib"] / 1024 for _, r in have], "o-", label=stage)
    ax_m.axhline(16, color="grey", ls="--", lw=1, label="16 GiB cap")
    for ax, label in ((ax_t, "wall time, s"), (ax_m, "peak RSS, GiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows read (two months of synthetic REES46, 200k products)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    ax_m.legend(fontsize=8)
    m = runs[-1]["machine"]
    fig.suptitle(f"pipeline cost by input size: commit {m['commit']}, {m['cores']}-core {m['cpu']}, "
                 f"torch {m['torch']}", fontsize=9)
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "scale.png"
    fig.savefig(out, dpi=110)
    doc = ROOT / "docs" / "scale.md"
    start, end = "<!-- scale-table -->", "<!-- /scale-table -->"
    text = doc.read_text()
    if start in text and end in text:
        head, rest = text.split(start, 1)
        doc.write_text(f"{head}{start}\n{scale_table(runs)}\n{end}{rest.split(end, 1)[1]}")
    print(f"scale_curves: {len(runs)} runs -> {out}, {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
