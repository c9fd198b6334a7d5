"""Reports: PNG charts (matplotlib: they render offline, unlike the HTML of ``dvc plots``, which loads vega from a
CDN), the evaluate stage's plots, and the benchmark's aggregation over seeds with its table and chart."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from sessionrec import atomic

LENGTH_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50)


def _bucket(length: np.ndarray) -> np.ndarray:
    edges = np.array(LENGTH_BUCKETS)
    return edges[np.searchsorted(edges, length, side="right") - 1]


def write_test_plots(out_dir: Path, metrics: dict, per_example: dict, ks) -> None:
    """``recall_at_k.csv`` (R@K, MRR@K, NDCG@K by K), ``recall_by_length.csv`` (R@20 by input length bucket) and
    both as ``test_metrics.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(out_dir / "recall_at_k.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["k", "recall", "mrr", "ndcg"])
        for k in sorted(ks):
            w.writerow([k, metrics[f"R@{k}"], metrics[f"MRR@{k}"], metrics[f"NDCG@{k}"]])
    bucket = _bucket(per_example["length"])
    with atomic.replacing(out_dir / "recall_by_length.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["length", "recall_20", "examples"])
        for b in np.unique(bucket):
            m = bucket == b
            w.writerow([int(b), round(float(per_example["R@20"][m].mean()), 6), int(m.sum())])
    ks = sorted(ks)
    buckets = [int(b) for b in np.unique(bucket)]
    by_k = {name: (ks, [metrics[f"{name}@{k}"] for k in ks]) for name in ("R", "MRR", "NDCG")}
    by_length = {"R@20": (buckets, [float(per_example["R@20"][bucket == b].mean()) for b in buckets])}
    line_panels({"test metrics by K": by_k, "test R@20 by input length": by_length}, out_dir / "test_metrics.png",
                {"test metrics by K": "K", "test R@20 by input length": "input length (bucket start)"})


def line_panels(panels: dict[str, dict[str, tuple[list, list]]], out_path: Path, xlabel: str | dict) -> None:
    """One panel per title, one line per label: ``panels[title][label] = (xs, ys)``; two panels per row.
    ``xlabel`` is one label for all panels or a dict by title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, lines) in zip(axes.flat, panels.items()):
        for label, (xs, ys) in lines.items():
            ax.plot(xs, ys, marker="o", ms=3, label=label)
        ax.set_xlabel(xlabel[title] if isinstance(xlabel, dict) else xlabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out_path)
    plt.close(fig)


def plot_curves(curves: dict[str, dict[str, list]], out_path: Path) -> None:
    """``curves[experiment][metric] = [(step, value), ...]`` as one PNG: a panel per metric, a line per experiment."""
    metrics = list(next(iter(curves.values())))
    panels = {m: {name: ([s + 1 for s, _ in by[m]], [v for _, v in by[m]]) for name, by in curves.items()}
              for m in metrics}
    line_panels(panels, out_path, "epoch")


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
    with atomic.replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "R@20", "MRR@20", "R@20_std", "MRR@20_std"])
        for m in _models(summary):
            s = summary[m]
            w.writerow([m, round(s["R@20"]["mean"], 6), round(s["MRR@20"]["mean"], 6), round(s["R@20"]["std"], 6),
                        round(s["MRR@20"]["std"], 6)])


def plot_benchmark(summary: dict, path: Path) -> None:
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
    save_figure(fig, path)
    plt.close(fig)


def save_figure(fig, path: Path) -> None:
    """``fig`` as ``path`` (its suffix names the format), whole or not at all."""
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=100, format=path.suffix.lstrip("."))
