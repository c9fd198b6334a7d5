from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Under pytest-xdist (``-n auto`` in pyproject.toml) the workers share the cores: each one, and every pipeline it
# starts in a subprocess (``model.num_threads: 0`` reads this variable), gets its share of them, not all of them.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

import numpy as np  # noqa: E402  (after the thread count is set: OpenBLAS reads it at import)
import pytest  # noqa: E402

from sessionrec.tools.project import throwaway_project  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OCT_HEAD = SHARED / "rees46-2019-oct-head"
NOV_HEAD = SHARED / "rees46-2019-nov-head"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real-data sample {path} not present (it lives in ../shared/data on the dev machines)")
    return path


def rees46_row(t, typ, pid, code="electronics.smartphone", brand="acme", price="10.00", user="1", sess="s1",
               cat="2053013555631882655", time=None) -> str:
    """One line of a REES46 CSV; ``t``: seconds after 2019-10-01 00:00:00 UTC (or ``time``, the event_time as is)."""
    time = time or f"2019-10-01 00:{t // 60:02d}:{t % 60:02d} UTC"
    return f"{time},{typ},{pid},{cat},{code},{brand},{price},{user},{sess}"


def write_csv(path: Path, rows: list[str], header: bool = True) -> Path:
    from sessionrec.sources.rees46 import COLUMNS

    lines = ([",".join(COLUMNS)] if header else []) + rows
    path.write_text("\n".join(lines) + "\n")
    return path


# A tiny project: one network (the default hybrid trains three; the tests that need it say so), small data and model.
TINY = {"data": {"synthetic": {"sessions_per_month": 1500, "n_items": 300, "n_categories": 30, "n_brands": 40}},
        "model": {"name": "graph_with_embeddings_and_attentional_aggregation", "epochs": 2, "batch_size": 256,
                  "embedding_dim": 16, "hidden_dim": 16, "num_threads": 1}}


def project_copy(tmp_path, overrides, benchmarks: bool = False):
    """A throwaway git + DVC project with this repository's pipeline (and, with ``benchmarks``, its benchmark
    pipeline) and `overrides` merged into params.yaml: ``(folder, environment)``."""
    return throwaway_project(ROOT, tmp_path, overrides, benchmarks=benchmarks)


def sh(proj, env, *cmd, check=True):
    r = subprocess.run(list(cmd), cwd=proj, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


N_ITEMS = 60


def session_store(path, sessions, items, targets: str):
    """A graph store of the clicks ``items`` (side features all 1, price 0) grouped by ``sessions``, and those clicks
    (``session``, ``item``, ``ts``) for the models fitted on them. ``targets``: ``all_prefixes`` or ``last``."""
    from sessionrec.graphs.build import build_examples
    from sessionrec.graphs.store import GraphStore, write_store

    sessions, items = np.asarray(sessions), np.asarray(items)
    feats = {f: (items if f == "item" else np.ones_like(items)) for f in
             ("item", "category", "sub_category", "element", "brand")}
    feats["price"] = np.zeros(len(items), np.float32)
    write_store(path, build_examples(sessions, feats, targets), 256)
    return GraphStore(path), {"session": sessions, "item": items, "ts": np.zeros(len(items), np.int64)}


def planted_store(path, n_sessions, seed):
    """Walks along a fixed random successor map (next = succ[current]); every item equally popular.
    Returns the store and the clicks (``session``, ``item``, ``ts``) for the models fitted on them."""
    rng = np.random.default_rng(seed)
    succ = np.random.default_rng(0).permutation(np.arange(1, N_ITEMS + 1))
    sessions, items = [], []
    for s in range(n_sessions):
        cur = int(rng.integers(1, N_ITEMS + 1))
        for _ in range(int(rng.integers(3, 7))):
            sessions.append(s)
            items.append(cur)
            cur = int(succ[cur - 1])
    return session_store(path, sessions, items, "all_prefixes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, raw=None, headers=None):
    """One HTTP request to the service: ``(status, decoded JSON body)``, also for 4xx answers."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, (json.loads(r.read() or b"null"))
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@contextlib.contextmanager
def served(proj, env):
    """``python src/serve.py`` in ``proj`` on a free loopback port, up and answering: ``(base URL, process)``;
    stopped on exit."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "src/serve.py", "--port", str(port)], cwd=proj, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if call(base, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError(server.stderr.read().decode()[-2000:])
        yield base, server
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def pytest_configure(config):
    """Without xdist (``-n 0``) the pipelines a test starts get all the cores, a fixed count: not the cores that
    happen to be free (``runtime.free_cores``), so that a test comparing two runs compares runs of one thread count.
    (Under xdist the workers set their share above; the controller leaves it to them.)"""
    if not os.environ.get("PYTEST_XDIST_WORKER") and not getattr(config.option, "numprocesses", None) \
            and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)


def pytest_sessionfinish(session, exitstatus):
    """With SESSIONREC_REQUIRE_TESTS=1 (CI), a run in which no test passed fails (under xdist as well: the
    controller's reporter counts every worker's results)."""
    if os.environ.get("SESSIONREC_REQUIRE_TESTS") == "1" and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        passed = len(reporter.stats.get("passed", [])) if reporter else 0
        if passed == 0:
            print("\nSESSIONREC_REQUIRE_TESTS=1 but no test passed")
            session.exitstatus = 1
