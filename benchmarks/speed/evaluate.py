"""Evaluation over the full catalogue at 4k and 200k products: test examples per minute and peak memory of
``evaluate_test`` (the evaluate stage's code: scores, loss, R@K / MRR@K / NDCG@K with the tie rule, coverage) for
untrained networks, each in a fresh process with the machine's default threads.

    python benchmarks/speed/evaluate.py [--sessions 6000] [--models gru4rec graph_with_embeddings_and_attention]
                                        [--items 4000 200000] [--output F.json]

The target of issue 15: at least 100,000 test examples per minute at 200k products on 2 cores for the networks.
Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = """
import json, resource, sys, time
sys.path.insert(0, {here!r})
from pathlib import Path
import torch
from training_step import KNOBS
from sessionrec.graphs.store import GraphStore
from sessionrec.models import build_model
from sessionrec.models.registry import model_config
from sessionrec.scoring import evaluate_test
name, n_items = sys.argv[2], int(sys.argv[3])
store = GraphStore(Path(sys.argv[1]))
torch.manual_seed(0)
model = build_model(model_config(name, n_items, KNOBS)).eval()
t0 = time.perf_counter()
metrics, _ = evaluate_test(model, store, [1, 5, 10, 20], "expected", 512, torch.device("cpu"), n_items)
seconds = time.perf_counter() - t0
print(json.dumps({{"model": name, "items": n_items, "examples": metrics["examples"], "seconds": round(seconds, 2),
                  "examples_per_minute": round(60 * metrics["examples"] / seconds),
                  "threads": torch.get_num_threads(),
                  "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=6000)
    ap.add_argument("--models", nargs="+", default=["gru4rec", "graph_with_embeddings_and_attention"])
    ap.add_argument("--items", type=int, nargs="+", default=[4000, 200_000])
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from training_step import synthetic_store
    from versions import markdown_table

    rows = []
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        for n_items in args.items:
            store = Path(tmp) / f"test-{n_items}.lmdb"
            synthetic_store(store, args.sessions, n_items).close()
            for name in args.models:
                r = subprocess.run([sys.executable, "-c", RUN.format(here=str(HERE)), str(store), name, str(n_items)],
                                   capture_output=True, text=True, check=True, env=dict(os.environ))
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    print(markdown_table(["model", "products", "test examples", "seconds", "examples / minute", "threads", "peak MiB"],
                         [[r["model"], r["items"], r["examples"], r["seconds"], r["examples_per_minute"], r["threads"],
                           r["peak_mib"]] for r in rows]))
    if args.output:
        args.output.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
