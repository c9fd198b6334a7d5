"""Read DVC experiments (``dvc exp show --json``) into plain rows: pick the best on validation, tabulate, plot.

DVC shows a failed queued experiment with the params and metrics of its baseline commit (its ``State`` column says
``Failed``). Here a failed row keeps its own ``-S`` params but never carries metrics, so it can neither be picked
nor be mistaken for a result. Selection reads validation metrics only (``metrics/val.json``).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field

from sessionrec import paths

VAL = "metrics/val.json"
TEST = "metrics/test.json"
CURVES = (paths.TRAIN_LIVE / "plots" / "metrics").as_posix()


class ExperimentsError(ValueError):
    """No experiment to pick, an unknown name, or dvc failing."""


@dataclass
class ExpRow:
    name: str
    rev: str
    state: str  # success | failed | queued | running | baseline | workspace
    params: dict = field(default_factory=dict)  # flat, e.g. {"model.lr": 0.001}
    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _row(rev: dict, name: str, state: str) -> ExpRow:
    data = rev.get("data") or {}
    params = _flat(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
    metrics = data.get("metrics") or {}
    row = ExpRow(name=name, rev=rev.get("rev", ""), state=state, params=params)
    if state not in ("failed", "queued", "running"):  # those rows carry their baseline's files: not theirs
        row.val = (metrics.get(VAL) or {}).get("data") or {}
        row.test = (metrics.get(TEST) or {}).get("data") or {}
    return row


def parse_exp_show(show: list) -> list[ExpRow]:
    """Rows from the JSON of ``dvc exp show --json``: baselines first, then their experiments."""
    rows = []
    for base in show:
        if base.get("rev") == "workspace":
            rows.append(_row(base, "workspace", "workspace"))
            continue
        rows.append(_row(base, base.get("name") or base.get("rev", "")[:7], "baseline"))
        for exp in base.get("experiments") or []:
            executor = exp.get("executor") or {}
            for rev in exp.get("revs") or []:
                state = executor.get("state") or ("failed" if rev.get("error") else "success")
                rows.append(_row(rev, rev.get("name") or exp.get("name") or rev.get("rev", "")[:7], state))
    return rows


def dvc_exp_show(cwd=None, all_commits: bool = False) -> list[ExpRow]:
    """Experiments of the current commit (``dvc exp show``), or of every commit with ``all_commits``."""
    cmd = ["dvc", "exp", "show", "--json"] + (["--all-commits"] if all_commits else [])
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ExperimentsError(f"`{' '.join(cmd)}` failed: {r.stderr.strip() or r.stdout.strip()}")
    return parse_exp_show(json.loads(r.stdout or "[]"))


def ranked(rows: list[ExpRow], metric: str = "MRR@20") -> list[ExpRow]:
    """Finished experiments, best validation ``metric`` first (baselines, the workspace and failed runs excluded)."""
    done = [r for r in rows if r.state == "success" and metric in r.val]
    return sorted(done, key=lambda r: (r.val[metric], r.name), reverse=True)


def best(rows: list[ExpRow], metric: str = "MRR@20") -> ExpRow:
    """The finished experiment with the highest validation ``metric``."""
    done = ranked(rows, metric)
    if not done:
        raise ExperimentsError(f"no finished experiment has validation {metric} (run `dvc exp run` / "
                               f"`dvc queue start` first; failed ones are never picked)")
    return done[0]


def varying_params(rows: list[ExpRow]) -> list[str]:
    """Params whose value differs between the rows: the ones a comparison table needs."""
    keys = sorted({k for r in rows for k in r.params})
    return [k for k in keys if len({json.dumps(r.params.get(k)) for r in rows}) > 1]


def table(rows: list[ExpRow], metrics=("R@20", "MRR@20"), sort_by: str = "MRR@20", with_test: bool = False,
          params: list[str] | None = None) -> str:
    """A Markdown table of experiments (finished first, by validation ``sort_by`` descending); metrics in %."""
    rows = [r for r in rows if r.state not in ("workspace",)]
    params = varying_params(rows) if params is None else params
    cols = ["experiment", "state"] + params + [f"val {m}" for m in metrics] + \
        ([f"test {m}" for m in metrics] if with_test else [])
    rows = sorted(rows, key=lambda r: (sort_by not in r.val, -r.val.get(sort_by, 0.0), r.name))

    def pct(v):
        return "" if v is None else f"{100 * v:.2f}"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r.name, r.state] + [str(r.params.get(p, "")) for p in params] + [pct(r.val.get(m)) for m in metrics]
        if with_test:
            cells += [pct(r.test.get(m)) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_curve(rev: str, metric: str, cwd=None) -> list[tuple[int, float]]:
    """Per-epoch ``metric`` (a DVCLive name such as ``val/MRR@20``) as committed in ``rev``."""
    path = f"{CURVES}/{metric}.tsv"
    r = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ExperimentsError(f"{rev[:7]} has no {path} (did its train stage run?)")
    lines = r.stdout.strip().splitlines()[1:]
    return [(int(a), float(b)) for a, b in (line.split("\t")[:2] for line in lines)]
