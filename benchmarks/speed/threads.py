"""Training threads on a shared machine: one GRU4Rec epoch with 1 thread, 2 threads and ``model.num_threads: 0``
(sessionrec's choice: the cores free when training starts), alone and beside another job that trains with 2 threads.

    python benchmarks/speed/threads.py [--sessions 8000] [--output F.json]

Each timing is a fresh process; the other job is the same epoch in a loop in its own process, started first and
stopped after. On 2 cores, 2 threads beside a 2-thread job oversubscribe the cores and OpenMP's barriers wait on
each other: the cliff this script shows. Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EPOCH = """
import json, sys, time
sys.path.insert(0, {here!r})
from pathlib import Path
import torch
from sessionrec.runtime import set_threads
n = set_threads(int(sys.argv[2]))
from training_step import epoch_seconds
from sessionrec.graphs.store import GraphStore
store = GraphStore(Path(sys.argv[1]))
if sys.argv[3] == "forever":
    while True:
        epoch_seconds("gru4rec", store, 4000, ours=True)
print(json.dumps({{"threads": n, "seconds": epoch_seconds("gru4rec", store, 4000, ours=True)}}))
"""


def epoch(store: Path, num_threads: int, mode: str = "once", env_threads: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if env_threads:
        env["OMP_NUM_THREADS"] = env_threads
    cmd = [sys.executable, "-c", EPOCH.format(here=str(HERE)), str(store), str(num_threads), mode]
    if mode == "forever":
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=8000)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from training_step import synthetic_store

    rows = []
    with tempfile.TemporaryDirectory(prefix="threads-bench-") as tmp:
        store = Path(tmp) / "train.lmdb"
        synthetic_store(store, args.sessions, 4000).close()
        for beside in (False, True):
            other = epoch(store, 2, "forever") if beside else None
            if other:
                time.sleep(5)  # the other job is training
            try:
                for label, n in (("1 thread", 1), ("2 threads", 2), ("num_threads: 0 (cores free)", 0)):
                    r = epoch(store, n)
                    rows.append({"setting": label, "beside_a_2_thread_job": beside, "threads": r["threads"],
                                 "epoch_seconds": round(r["seconds"], 2)})
                    print(rows[-1], flush=True)
            finally:
                if other:
                    os.killpg(other.pid, signal.SIGTERM)
                    other.wait()
    print("| setting | alone: threads, epoch s | beside a 2-thread job: threads, epoch s |")
    print("|---|---|---|")
    for label in dict.fromkeys(r["setting"] for r in rows):
        a, b = [next(r for r in rows if r["setting"] == label and r["beside_a_2_thread_job"] == x) for x in (False, True)]
        print(f"| {label} | {a['threads']}, {a['epoch_seconds']} | {b['threads']}, {b['epoch_seconds']} |")
    if args.output:
        args.output.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
