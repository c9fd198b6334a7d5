"""Bounded load on the recommendation service over loopback: throughput and p50 / p95 / p99 latency of ``/recommend``
and of the live-session path, with 1 and 2 uvicorn workers, and the server's resident memory before and after.

    python benchmarks/speed/serve_load.py                       # the pipeline's model (run `dvc repro` first)
    python benchmarks/speed/serve_load.py --synthetic-items 200000 --model gru4rec   # an untrained network over a
                                                                # synthetic 200k-product catalogue
Options: --requests N per cell (default 400), --concurrency C client threads (default 1), --workers 1 2.

Each cell starts a fresh server (``src/serve.py``, or this file's synthetic app) on a free port, warms it up with 20
requests, then sends exactly N requests of sessions of 1 to 10 clicks drawn with a fixed seed; a non-200 answer counts
as failed. Memory is the sum of VmRSS over the server's processes. Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def synthetic_app():
    """uvicorn factory (``--synthetic-items``): an untrained network over a synthetic catalogue, popularity Zipf."""
    from sessionrec.models.registry import model_config
    from sessionrec.params import ModelParams, ServeParams
    from sessionrec.serving.app import create_app
    from sessionrec.serving.recommender import Recommender
    from sessionrec.training.loop import new_model

    n, name = int(os.environ["SERVE_LOAD_ITEMS"]) + 1, os.environ["SERVE_LOAD_MODEL"]
    vocab = {"category": 150, "sub_category": 60, "element": 80, "brand": 300}
    knobs = {**dataclasses.asdict(ModelParams()), "vocab_sizes": vocab}
    model = new_model(model_config(name, n, knobs), 0).eval()
    rng = np.random.default_rng(0)
    catalogue = {f: rng.integers(2, v, n) for f, v in vocab.items()}
    catalogue.update(item=np.arange(n), price=rng.random(n).astype(np.float32), product_id=np.arange(n) + 10**6)
    tops = np.array(["c%d" % c for c in catalogue["category"]], dtype=object)
    display = {"category_code": list(tops), "brand": [None] * n, "price": [None] * n, "category_top": tops}
    counts = rng.zipf(1.5, n).astype(np.float64)
    return create_app(Recommender(model, name, catalogue, counts, display), ServeParams(max_k=100))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` and its children, MiB."""
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                    text=True).stdout.split()]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def start(args, workers: int, port: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if args.synthetic_items:
        env.update(SERVE_LOAD_ITEMS=str(args.synthetic_items), SERVE_LOAD_MODEL=args.model)
        cmd = [sys.executable, "-m", "uvicorn", "serve_load:synthetic_app", "--factory", "--app-dir",
               str(Path(__file__).parent), "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    else:
        cmd = [sys.executable, "src/serve.py", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError(f"the server did not answer on port {port}")


def product_ids(port: int, n: int) -> list[int]:
    """Products the model knows: the popularity answer's top ``n``."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/recommend", json.dumps({"events": [], "k": n}), {"content-type": "application/json"})
    return [r["product_id"] for r in json.loads(c.getresponse().read())["items"]]


def run_cell(port: int, path: str, products: list[int], n: int, concurrency: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    sessions = [[int(p) for p in rng.choice(products, rng.integers(1, 11))] for _ in range(n)]

    def one(i: int):
        c = conns[i % concurrency]
        if path == "/recommend":
            url, body = "/recommend", {"events": [{"product_id": p, "event_time": 1.57e9 + j}
                                                  for j, p in enumerate(sessions[i])], "k": 20}
        else:  # the live path: one click appended to session i % 50
            url, body = f"/sessions/s{i % 50}/events", {"product_id": sessions[i][0], "event_time": 1.57e9 + i}
        t0 = time.perf_counter()
        c.request("POST", url, json.dumps(body), {"content-type": "application/json"})
        r = c.getresponse()
        r.read()
        return time.perf_counter() - t0, r.status == 200

    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(concurrency)]
    t0 = time.perf_counter()
    if concurrency == 1:
        results = [one(i) for i in range(n)]
    else:
        with ThreadPoolExecutor(concurrency) as pool:  # thread j sends requests j, j + C, ... on its own connection
            results = [r for rs in pool.map(lambda j: [one(i) for i in range(j, n, concurrency)],
                                            range(concurrency)) for r in rs]
    wall = time.perf_counter() - t0
    lat = np.array([r[0] for r in results]) * 1000
    return {"requests": n, "failed": int(sum(not r[1] for r in results)), "req_per_s": round(n / wall, 1),
            **{f"p{q}_ms": round(float(np.percentile(lat, q)), 2) for q in (50, 95, 99)}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--synthetic-items", type=int, default=0)
    ap.add_argument("--model", default="gru4rec", help="with --synthetic-items: a network of the registry")
    ap.add_argument("--output", type=Path, help="also write the rows as JSON")
    args = ap.parse_args()
    rows = []
    for workers in args.workers:
        port = free_port()
        proc = start(args, workers, port)
        try:
            products = product_ids(port, 100)
            run_cell(port, "/recommend", products, 20, 1, 99)  # warm-up
            before = rss_mib(proc.pid)
            for path in ("/recommend", "/sessions/{id}/events"):
                row = {"catalogue": args.synthetic_items or "pipeline", "workers": workers, "path": path,
                       **run_cell(port, path, products, args.requests, args.concurrency, 0)}
                rows.append(row)
            after = rss_mib(proc.pid)
            for r in rows[-2:]:
                r.update(rss_before_mib=round(before, 1), rss_after_mib=round(after, 1))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    keys = ["catalogue", "workers", "path", "requests", "failed", "req_per_s", "p50_ms", "p95_ms", "p99_ms",
            "rss_before_mib", "rss_after_mib"]
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    if args.output:
        args.output.write_text(json.dumps(rows, indent=1) + "\n")
    failed = sum(r["failed"] for r in rows)
    print(f"serve_load: {len(rows)} cells, {sum(r['requests'] for r in rows)} requests, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
