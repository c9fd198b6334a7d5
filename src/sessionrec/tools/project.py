"""A throwaway git + DVC copy of this project's pipeline with some params changed: what the end-to-end tests and
``benchmarks/run.py``'s pipeline figure run ``dvc repro`` in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml


def merge(params: dict, overrides: dict) -> dict:
    """``overrides`` merged into ``params`` in place (nested sections key by key); returns ``params``."""
    for k, v in overrides.items():
        if isinstance(v, dict):
            merge(params.setdefault(k, {}), v)
        else:
            params[k] = v
    return params


def throwaway_project(root: Path, dest: Path, overrides: dict, benchmarks: bool = False,
                      link_cache: bool = False) -> tuple[Path, dict]:
    """``dest/proj``: ``root``'s ``src/`` and ``dvc.yaml`` (with ``benchmarks``, its benchmark pipeline too) and
    ``params.yaml`` with ``overrides`` merged, committed in a fresh git + DVC repository; and the environment to run
    in it. ``link_cache``: DVC links its cache instead of copying (a large input is not stored twice)."""
    proj = dest / "proj"
    proj.mkdir()
    shutil.copytree(root / "src", proj / "src", ignore=shutil.ignore_patterns("__pycache__"))
    if benchmarks:
        shutil.copytree(root / "benchmarks", proj / "benchmarks")
    shutil.copy(root / "dvc.yaml", proj)
    params = merge(yaml.safe_load((root / "params.yaml").read_text()), overrides)
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "PYTHONPATH": ""}
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
    cmds = [["git", "init", "-q"], ["dvc", "init", "-q"]]
    if link_cache:
        cmds.append(["dvc", "config", "cache.type", "hardlink,symlink"])
    for cmd in [*cmds, ["git", "add", "-A"], ["git", "commit", "-qm", "init"]]:
        subprocess.run(cmd, cwd=proj, env=env, check=True, capture_output=True)
    return proj, env
