"""The sampled training loss against the full softmax, side by side: training examples per second at 4k and 200k
products (one epoch of an untrained network on a synthetic store, each cell in a fresh process, the machine's
default threads), with dense Adam and with ``model.optimizer: lazy_adam`` (only the product rows a batch touched
are updated), and with ``--quality`` what it costs in validation quality (the networks trained and chosen on
validation exactly as the train stage does, no refit, the test split untouched) on this checkout's pipeline data
(``dvc repro`` first) or with ``--data rees46-oct-head`` on the fixed split of the real REES46 October head in
``../shared/data`` (prepared by ``dvc repro build_graphs`` in a throwaway copy of the project).

``--variants`` picks the training set-ups: ``full`` (the full softmax, Adam), ``sampled`` (the sampled loss, Adam),
``sampled_no_table_l2`` (the same with no L2 penalty on the product table: the one thing ``lazy_adam`` changes
besides updating only the rows a batch touched, so the two differences can be told apart) and ``lazy`` (the sampled
loss, ``lazy_adam``); ``--seeds`` the ``model.seed`` of each run.

    python benchmarks/speed/sampled_loss.py [--sessions 3000] [--items 4000 200000] [--quality [--no-speed]]
        [--data pipeline|rees46-oct-head] [--models M ...] [--variants V ...] [--seeds S ...] [--output F.json]

Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from versions import ROOT, machine, markdown_table, run_snippet  # noqa: E402

MODELS = ("gru4rec", "graph_with_embeddings_and_attention")
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
VARIANTS = {"full": {"loss": "full", "optimizer": "adam"},  # the training set-ups (--variants), by name
            "sampled": {"loss": "sampled", "optimizer": "adam"},
            "sampled_no_table_l2": {"loss": "sampled", "optimizer": "adam", "table_l2": False},
            "lazy": {"loss": "sampled", "optimizer": "lazy_adam"}}
TIMED = ("full", "sampled", "lazy")  # the variants the speed part times (the L2 one runs as fast as "sampled")
QUALITY = """
import json, sys
import torch
from sessionrec import paths
from sessionrec.params import load_params
from sessionrec.runtime import set_threads
from sessionrec.training import loop
from sessionrec.training.run import train_and_choose, with_model
run = json.loads(sys.argv[1])
changes = {k: v for k, v in run.items() if k not in ("variant", "table_l2")}
if run.get("table_l2") is False:  # dense fused Adam with L2 on every weight but the product table (as lazy_adam)
    def adam_no_table_l2(model, lr, weight_decay, kind="adam"):
        table = model.output_layer()[0]
        rest = [p for p in model.parameters() if p is not table]
        return torch.optim.Adam([{"params": rest}, {"params": [table], "weight_decay": 0.0}], lr=lr,
                                weight_decay=weight_decay, fused=True)
    loop.make_optimizer = adam_no_table_l2
params = load_params(paths.PARAMS)
set_threads(params.model.num_threads)
t = train_and_choose(with_model(params, refit=False, **changes))
print(json.dumps({**run, "best_epoch": t.best_epoch, "seconds": round(t.seconds, 1),
                  "val_R@20": round(t.val["R@20"], 4), "val_MRR@20": round(t.val["MRR@20"], 4)}))
"""

def rees46_head_overrides() -> dict:
    """The params the benchmark of the REES46 head split ran with (``benchmarks/results/rees46-oct-head.params.yaml``:
    its data section, its model sizes and schedule), data paths made absolute for a throwaway project."""
    import yaml

    ran = yaml.safe_load((ROOT / "benchmarks" / "results" / "rees46-oct-head.params.yaml").read_text())
    data = {k: str((ROOT / v).resolve()) if k.endswith("_dir") else v for k, v in ran["data"].items()}
    keep = ("batch_size", "dropout_rate", "embedding_dim", "hidden_dim", "epochs", "patience", "use_scheduler")
    return {"data": data, "model": {k: ran["model"][k] for k in keep}}


def speed(sessions: int, items: list) -> list:
    from training_step import synthetic_store

    rows = []
    with tempfile.TemporaryDirectory(prefix="sampled-loss-") as tmp:
        for n_items in items:
            store = Path(tmp) / f"train-{n_items}.lmdb"
            synthetic_store(store, sessions, n_items).close()
            for name in MODELS:
                for v in TIMED:
                    rows.append(run_snippet(SPEED.format(here=str(HERE)),
                                            [store, name, n_items, VARIANTS[v]["loss"], VARIANTS[v]["optimizer"]]))
                    print(rows[-1], flush=True)
    return rows


def quality(data: str, models, variants, seeds) -> list:
    """Every (model, variant, seed) trained and chosen on validation in a fresh process, in this checkout (its
    pipeline data) or in a throwaway copy of the project on the REES46 head's fixed split."""
    with tempfile.TemporaryDirectory(prefix="sampled-quality-") as tmp:
        cwd, env = ROOT, None  # the pipeline's paths are relative to the project root
        if data == "rees46-oct-head":
            from sessionrec.tools.project import throwaway_project

            cwd, env = throwaway_project(ROOT, Path(tmp), rees46_head_overrides())
            subprocess.run(["dvc", "repro", "-q", "build_graphs"], cwd=cwd, env=env, check=True)
        rows = []
        for name in models:
            for variant in variants:
                for seed in seeds:
                    run = {"variant": variant, "name": name, "seed": seed, **VARIANTS[variant]}
                    rows.append(run_snippet(QUALITY, [json.dumps(run)], cwd=cwd, env=env))
                    print(rows[-1], flush=True)
    return rows


def mean_table(rows: list) -> str:
    """Validation R@20 / MRR@20 of each (model, variant): the mean over seeds, and each seed's."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["name"], r["variant"]), []).append(r)
    mean = lambda rs, k: f"{100 * sum(r[k] for r in rs) / len(rs):.2f}"  # noqa: E731
    return markdown_table(
        ["model", "variant", "seeds", "best epochs", "validation R@20", "validation MRR@20", "per seed R@20 / MRR@20"],
        [[name, variant, len(rs), " ".join(str(r["best_epoch"]) for r in rs), mean(rs, "val_R@20"),
          mean(rs, "val_MRR@20"), ", ".join(f"{100 * r['val_R@20']:.2f} / {100 * r['val_MRR@20']:.2f}" for r in rs)]
         for (name, variant), rs in groups.items()])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=3000)
    ap.add_argument("--items", type=int, nargs="+", default=[4000, 200_000])
    ap.add_argument("--quality", action="store_true", help="also train both losses on this checkout's pipeline data")
    ap.add_argument("--no-speed", action="store_true", help="only the quality part (with --quality)")
    ap.add_argument("--data", choices=("pipeline", "rees46-oct-head"), default="pipeline")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(TIMED))
    ap.add_argument("--seeds", type=int, nargs="+", default=[42], help="model.seed of each quality run")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    out = {"command": "python benchmarks/speed/sampled_loss.py " + " ".join(sys.argv[1:]), "machine": machine()}
    out["speed"] = [] if args.no_speed else speed(args.sessions, args.items)
    full = {(r["model"], r["items"]): r["examples_per_second"] for r in out["speed"] if r["loss"] == "full"}
    if out["speed"]:
        print(markdown_table(["model", "products", "loss", "optimizer", "examples / s", "ratio to full", "peak MiB"],
                             [[r["model"], r["items"], r["loss"], r["optimizer"], r["examples_per_second"],
                               f"{r['examples_per_second'] / full[r['model'], r['items']]:.2f}x", r["peak_mib"]]
                              for r in out["speed"]]))
    if args.quality:
        out.update(data=args.data, quality=quality(args.data, args.models, args.variants, args.seeds))
        print(mean_table(out["quality"]))
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
