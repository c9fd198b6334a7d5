"""PNG line charts with matplotlib: they render offline, unlike the HTML of ``dvc plots`` (vega from a CDN)."""

from __future__ import annotations

from pathlib import Path


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
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
