"""Aggregate benchmark runs (models x seeds) into means and standard deviations, a chart, and a Markdown table."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

TIMINGS = ("train_seconds", "train_examples_per_second", "inference_ms_per_session")


def aggregate(runs: list[dict], ks) -> dict:
    """``{model: {metric: {"mean", "std", "n"}}}`` over seeds; std is the sample standard deviation (0 for one)."""
    names = [f"{m}@{k}" for m in ("R", "MRR", "NDCG") for k in ks] + ["coverage@20", "best_epoch", *TIMINGS]
    out = {}
    for model in dict.fromkeys(r["model"] for r in runs):
        rows = [r for r in runs if r["model"] == model]
        out[model] = {}
        for name in names:
            vals = np.array([r[name] for r in rows if r.get(name) is not None], dtype=np.float64)
            if len(vals):
                out[model][name] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                                    "n": int(len(vals))}
        out[model]["seeds"] = [r["seed"] for r in rows]
        out[model]["examples"] = rows[0]["examples"]
    return out


def _models(summary: dict) -> list[str]:
    return [m for m in summary if not m.startswith("_")]


def markdown_table(summary: dict) -> str:
    """One row per model, metrics in % as mean ± std over seeds, then the timings."""
    head = ["model", "R@20", "MRR@20", "NDCG@20", "R@10", "MRR@10", "train s", "train ex/s", "infer ms/session"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pct(m, k):
        v = summary[m].get(k)
        return f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}" if v else ""

    def num(m, k, fmt):
        v = summary[m].get(k)
        return format(v["mean"], fmt) if v else "-"
    for m in _models(summary):
        lines.append("| " + " | ".join([f"`{m}`", pct(m, "R@20"), pct(m, "MRR@20"), pct(m, "NDCG@20"), pct(m, "R@10"),
                                        pct(m, "MRR@10"), num(m, "train_seconds", ".1f"),
                                        num(m, "train_examples_per_second", ",.0f"),
                                        num(m, "inference_ms_per_session", ".3f")]) + " |")
    return "\n".join(lines)


def write_csv(summary: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "R@20", "MRR@20", "R@20_std", "MRR@20_std"])
        for m in _models(summary):
            s = summary[m]
            w.writerow([m, round(s["R@20"]["mean"], 6), round(s["MRR@20"]["mean"], 6), round(s["R@20"]["std"], 6),
                        round(s["MRR@20"]["std"], 6)])


def plot(summary: dict, path: Path) -> None:
    """Horizontal bars of test R@20 and MRR@20 (mean, with the std over seeds as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = _models(summary)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(models) + 1.5), sharey=True)
    for ax, metric in zip(axes, ("R@20", "MRR@20")):
        means = [100 * summary[m][metric]["mean"] for m in models]
        stds = [100 * summary[m][metric]["std"] for m in models]
        ax.barh(models, means, xerr=stds, color="#4c72b0", alpha=0.85)
        for y, v in enumerate(means):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlabel(f"test {metric} (%)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def replace_in_readme(readme: Path, name: str, table: str) -> None:
    """Replace the text between ``<!-- benchmark:NAME -->`` and ``<!-- /benchmark:NAME -->``."""
    text = readme.read_text()
    start, end = f"<!-- benchmark:{name} -->", f"<!-- /benchmark:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme}: no {start} ... {end} markers")
    readme.write_text(pattern.sub(lambda _: f"{start}\n{table}\n{end}", text))
