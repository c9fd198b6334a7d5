"""What the speed scripts share: an earlier commit's ``src/`` to run against, one timed run of a snippet in a fresh
process (with this checkout's library or that commit's), and their Markdown tables."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def baseline_src(revision: str, into: Path) -> Path:
    """``src/`` of ``revision`` (``git archive``), unpacked under ``into``; returns that ``src``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", revision, "src"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def run_snippet(code: str, args: list, src: Path | None = None, threads: int | None = None, cwd: Path | None = None,
                env: dict | None = None) -> dict:
    """``python -c code *args`` in a fresh process (in ``cwd``, with ``env``), with ``src`` first on the path (the
    baseline's library before the installed one) and ``threads`` as ``OMP_NUM_THREADS``; the JSON of its last output
    line. A failing snippet raises with its error output."""
    env = {**(env or os.environ), **({"PYTHONPATH": str(src)} if src else {}),
           **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)
    if r.returncode:
        raise RuntimeError(f"snippet failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def parse_args(doc: str, size: str, default: int, more=None) -> argparse.Namespace:
    """The flags every side-by-side script takes: ``--baseline``, ``--SIZE``, ``--repeats``, ``--output``; ``more``,
    if given, adds a script's own to the parser."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="a git revision whose src/ is the baseline")
    ap.add_argument(f"--{size}", type=int, default=default)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output", type=Path)
    if more:
        more(ap)
    return ap.parse_args()


@contextlib.contextmanager
def workspace(baseline: str, prefix: str):
    """A temporary folder, and the baseline's ``src/`` unpacked in it: ``(folder, src)``."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        tmp = Path(tmp)
        yield tmp, baseline_src(baseline, tmp / "baseline")


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table; integers get thousands separators."""
    cell = lambda v: f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def machine() -> dict:
    """What a figure was measured on: the commit (``+changes`` when ``src/`` differs from it), CPU, cores, torch."""
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True)
    return {"commit": (commit.stdout.strip() or "unknown") + ("+changes" if dirty.stdout.strip() else ""), "cpu": cpu,
            "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}
