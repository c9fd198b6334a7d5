"""The sampled training loss against the full softmax, side by side: training examples per second at 4k and 200k
products (one epoch of an untrained network on a synthetic store, each cell in a fresh process, the machine's
default threads), with dense Adam and with ``model.optimizer: lazy_adam`` (only the product rows a batch touched
are updated), and with ``--quality`` what it costs in validation quality on this checkout's pipeline data
(``dvc repro`` first: the networks trained and chosen on validation exactly as the train stage does, no refit,
the test split untouched).

    python benchmarks/speed/sampled_loss.py [--sessions 3000] [--items 4000 200000] [--quality [--no-speed]]
                                            [--output F.json]

Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import ROOT, markdown_table, run_snippet  # noqa: E402

MODELS = ("gru4rec", "graph_with_embeddings_and_attention")
VARIANTS = (("full", "adam"), ("sampled", "adam"), ("sampled", "lazy_adam"))  # (model.loss, model.optimizer)
SPEED = """
import json, resource, sys, time
sys.path.insert(0, {here!r})
from pathlib import Path
import numpy as np, torch
from training_step import KNOBS
from sessionrec.graphs.store import GraphStore
from sessionrec.models import build_model
from sessionrec.models.registry import model_config
from sessionrec.training.loop import TrainConfig, TrainStep, make_optimizer, train_epoch
from sessionrec.training.loss import make_loss
store, name, n_items, loss = GraphStore(Path(sys.argv[1])), sys.argv[2], int(sys.argv[3]), sys.argv[4]
optimizer = sys.argv[5] if len(sys.argv) > 5 else "adam"
torch.manual_seed(0)
model = build_model(model_config(name, n_items, KNOBS))
targets = np.concatenate([b.target.numpy() for b in store.iter_batches(4096)])
cfg = TrainConfig(lr=1e-3, weight_decay=1e-5, batch_size=128, epochs=1, use_scheduler=False, patience=1, seed=0,
                  loss=loss, optimizer=optimizer)
fn = make_loss(loss, n_items, targets, cfg.n_sample, cfg.sample_alpha, cfg.logq)
t0 = time.perf_counter()
opt = make_optimizer(model, 1e-3, 1e-5, optimizer)
train_epoch(model, opt, store, cfg, 1, torch.device("cpu"), TrainStep(model, fn))
seconds = time.perf_counter() - t0
print(json.dumps({{"model": name, "items": n_items, "loss": loss, "optimizer": optimizer, "examples": len(store),
                  "examples_per_second": round(len(store) / seconds), "threads": torch.get_num_threads(),
                  "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""
QUALITY = """
import dataclasses, json, sys
from sessionrec import paths
from sessionrec.params import load_params
from sessionrec.runtime import set_threads
from sessionrec.training.run import train_and_choose, with_model
params = load_params(paths.PARAMS)
set_threads(params.model.num_threads)
t = train_and_choose(with_model(params, name=sys.argv[1], loss=sys.argv[2], optimizer=sys.argv[3], refit=False))
print(json.dumps({"model": sys.argv[1], "loss": sys.argv[2], "optimizer": sys.argv[3], "best_epoch": t.best_epoch,
                  "seconds": round(t.seconds, 1), "val_R@20": round(t.val["R@20"], 4),
                  "val_MRR@20": round(t.val["MRR@20"], 4)}))
"""


def speed(sessions: int, items: list) -> list:
    from training_step import synthetic_store

    rows = []
    with tempfile.TemporaryDirectory(prefix="sampled-loss-") as tmp:
        for n_items in items:
            store = Path(tmp) / f"train-{n_items}.lmdb"
            synthetic_store(store, sessions, n_items).close()
            for name in MODELS:
                for loss, optimizer in VARIANTS:
                    rows.append(run_snippet(SPEED.format(here=str(HERE)), [store, name, n_items, loss, optimizer]))
                    print(rows[-1], flush=True)
    return rows


def quality() -> list:
    import os

    rows = []
    cwd = os.getcwd()
    os.chdir(ROOT)  # the pipeline's paths are relative to the project root
    try:
        for name in MODELS:
            for loss, optimizer in VARIANTS:
                rows.append(run_snippet(QUALITY, [name, loss, optimizer]))
                print(rows[-1], flush=True)
    finally:
        os.chdir(cwd)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=3000)
    ap.add_argument("--items", type=int, nargs="+", default=[4000, 200_000])
    ap.add_argument("--quality", action="store_true", help="also train both losses on this checkout's pipeline data")
    ap.add_argument("--no-speed", action="store_true", help="only the quality part (with --quality)")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    out = {"speed": [] if args.no_speed else speed(args.sessions, args.items)}
    full = {(r["model"], r["items"]): r["examples_per_second"] for r in out["speed"] if r["loss"] == "full"}
    if out["speed"]:
        print(markdown_table(["model", "products", "loss", "optimizer", "examples / s", "ratio to full", "peak MiB"],
                             [[r["model"], r["items"], r["loss"], r["optimizer"], r["examples_per_second"],
                               f"{r['examples_per_second'] / full[r['model'], r['items']]:.2f}x", r["peak_mib"]]
                              for r in out["speed"]]))
    if args.quality:
        out["quality"] = quality()
        print(markdown_table(["model", "loss", "optimizer", "best epoch", "validation R@20", "validation MRR@20",
                              "seconds"],
                             [[r["model"], r["loss"], r["optimizer"], r["best_epoch"], r["val_R@20"],
                               r["val_MRR@20"], r["seconds"]] for r in out["quality"]]))
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
