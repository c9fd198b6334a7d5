"""Evaluation over the full catalogue at 4k and 200k products: test examples per minute and peak memory of
``evaluate_test`` (the evaluate stage's code: scores, loss, R@K / MRR@K / NDCG@K with the tie rule, coverage) for
untrained networks, each in a fresh process with the machine's default threads. ``--models hybrid``: three untrained
networks, STAN fitted on drawn clicks (20 per product; ``--stan-sessions N``: on N REES46-like sessions, whose
popular products give each query thousands of candidates as the real data does) and the weights of
``--hybrid-weights``. ``--weight-search``: the hybrid's weight search instead (``training.blend.validation_curve``
over the store with the 286 points of its first stage, its parts included), validation examples per minute and a
digest of the curve, so that two commits' curves can be compared.

    python benchmarks/speed/evaluate.py [--sessions 6000] [--models gru4rec graph_with_embeddings_and_attention]
                                        [--items 4000 200000] [--batch-sizes 512] [--baseline REV] [--output F.json]
                                        [--hybrid-weights W W W W W W] [--stan-sessions N] [--weight-search]

With ``--baseline``, an earlier commit's ``src/`` (``git archive``) runs on the same store right after each of ours.
``--batch-sizes``: the rows read and encoded at once (``evaluate.batch_size``; validation during training reads with
it too), each size a run of its own.

The target of issue 15: at least 100,000 test examples per minute at 200k products on 2 cores for the networks.
Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = """
import json, resource, sys, time
sys.path.insert(0, {here!r})
from pathlib import Path
import torch
from dataclasses import asdict
from training_step import KNOBS
from sessionrec.params import ModelParams
from sessionrec.graphs.store import GraphStore
from sessionrec.models import build_model
from sessionrec.models.registry import model_config
from sessionrec.scoring import evaluate_test
name, n_items, batch_size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = GraphStore(Path(sys.argv[1]))
torch.manual_seed(0)
knobs = {{**asdict(ModelParams()), **KNOBS}}  # the hybrid's networks and STAN's knobs at their defaults
model = build_model(model_config(name, n_items, knobs)).eval()
if name == "hybrid":  # STAN fitted on drawn clicks (20 per product, one a second before the test's) or on sessions like
    import numpy as np  # REES46's (--stan-sessions, over the 61 days before the test), the weights given
    rng = np.random.default_rng(0)
    if int(sys.argv[6]):
        from training_step import rees46_like_sessions
        model.fit_events(*rees46_like_sessions(rng, int(sys.argv[6]), n_items, -61 * 86400, 0))
    else:
        n = 20 * n_items
        model.fit_events(np.sort(rng.integers(0, n // 5, n)), rng.integers(1, n_items, n), np.arange(n) - n)
    model.weights.copy_(torch.tensor(json.loads(sys.argv[5]), dtype=torch.float64))
t0 = time.perf_counter()
if len(sys.argv) > 7 and int(sys.argv[7]):  # the weight search's first stage: each point's MRR@20
    import hashlib
    from sessionrec.training.blend import simplex_grid, validation_curve
    grid = [(*u, 0.0, 0.0) for u in simplex_grid(len(model.nets) + 1)]
    curve = validation_curve(model, store, batch_size, "expected", torch.device("cpu"), grid)
    metrics = {{"examples": len(store), "points": len(grid), "best_MRR@20": max(curve.values()),
                "curve_sha1": hashlib.sha1(repr(sorted(curve.items())).encode()).hexdigest()[:12]}}
else:
    metrics, _ = evaluate_test(model, store, [1, 5, 10, 20], "expected", batch_size, torch.device("cpu"), n_items)
    metrics = {{k: metrics[k] for k in ("examples", "R@20", "MRR@20")}}
seconds = time.perf_counter() - t0
print(json.dumps({{"model": name, "items": n_items, "batch_size": batch_size, **metrics,
                  "seconds": round(seconds, 2), "examples_per_minute": round(60 * metrics["examples"] / seconds),
                  "threads": torch.get_num_threads(),
                  "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""


def table(rows: list) -> str:
    """The markdown table of ``main``'s rows: with a baseline, ours and its side by side per model and size
    (docs/speed.md shows the committed run's)."""
    from versions import markdown_table

    now = [r for r in rows if r.get("code", "now") == "now"]
    key = lambda r: (r["model"], r["items"], r.get("batch_size", 512))  # noqa: E731
    base = {key(r): r for r in rows if r.get("code", "now") != "now"}
    if not base:
        return markdown_table(["model", "products", "batch", "test examples", "seconds", "examples / minute",
                               "threads", "peak MiB"],
                              [[r["model"], r["items"], r.get("batch_size", 512), r["examples"], r["seconds"],
                                r["examples_per_minute"], r["threads"], r["peak_mib"]] for r in now])
    code = next(iter(base.values()))["code"]
    search = "curve_sha1" in now[0]  # --weight-search: validation examples, and whether both curves are the same
    return markdown_table(
        ["model", "products", "validation examples" if search else "test examples", "examples / minute",
         f"at `{code}`", "ratio", "peak MiB", f"at `{code}`"] + ["same curve"] * search,
        [[r["model"], r["items"], r["examples"], r["examples_per_minute"], b["examples_per_minute"],
          f"{r['examples_per_minute'] / b['examples_per_minute']:.2f}x", r["peak_mib"], b["peak_mib"]]
         + (["yes" if r["curve_sha1"] == b["curve_sha1"] else "no"] if search else [])
         for r in now for b in [base[key(r)]]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=6000)
    ap.add_argument("--models", nargs="+", default=["gru4rec", "graph_with_embeddings_and_attention"])
    ap.add_argument("--items", type=int, nargs="+", default=[4000, 200_000])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[512])
    ap.add_argument("--hybrid-weights", type=float, nargs=6, default=[0.1, 0.5, 0.0, 0.4, 0.0, 0.0],
                    help="with --models hybrid: its weights (GRU4Rec, SR-GNN, attention GNN, STAN, repeat last, "
                    "repeat earlier; default the ones chosen at 126k products, docs/scale.md)")
    ap.add_argument("--stan-sessions", type=int, default=0,
                    help="with --models hybrid: fit STAN on this many REES46-like sessions (power-law popularity, "
                    "training_step.rees46_like_sessions) instead of 20 uniformly drawn clicks per product")
    ap.add_argument("--weight-search", action="store_true",
                    help="with --models hybrid: time its weight search's first stage instead of evaluate_test")
    ap.add_argument("--baseline", help="a git revision whose src/ runs beside ours")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from training_step import synthetic_store
    from versions import baseline_src, run_snippet

    rows = []
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        codes = {"now": None}
        if args.baseline:
            codes[args.baseline] = baseline_src(args.baseline, Path(tmp) / "baseline")
        for n_items in args.items:
            store = Path(tmp) / f"test-{n_items}.lmdb"
            synthetic_store(store, args.sessions, n_items).close()
            for name in args.models:
                for bs in args.batch_sizes:
                    for code, src in codes.items():
                        rows.append({"code": code, **run_snippet(RUN.format(here=str(HERE)),
                                                                 [store, name, n_items, bs,
                                                                  json.dumps(args.hybrid_weights),
                                                                  args.stan_sessions, int(args.weight_search)],
                                                                 src)})
                        print(rows[-1], flush=True)
    print(table(rows))
    if args.output:
        args.output.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
