"""What the side-by-side speed scripts share: an earlier commit's ``src/`` to run against, and one timed run of a
snippet in a fresh process, with this checkout's library or that commit's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def baseline_src(revision: str, into: Path) -> Path:
    """``src/`` of ``revision`` (``git archive``), unpacked under ``into``; returns that ``src``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", revision, "src"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def run_snippet(code: str, args: list, src: Path | None = None, threads: int | None = None) -> dict:
    """``python -c code *args`` in a fresh process, with ``src`` first on the path (the baseline's library before
    the installed one) and ``threads`` as ``OMP_NUM_THREADS``; the JSON of its last output line."""
    env = {**os.environ, **({"PYTHONPATH": str(src)} if src else {}),
           **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                       check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])
