"""Stage ``benchmark`` (one cell of the models x seeds matrix): train one model with one seed exactly as the train
stage does (epochs chosen on validation, then the refit), test it once, and time both.

    python src/benchmark.py MODEL SEED   ->  metrics/benchmark/MODEL-SEED.json
"""

import dataclasses
import logging
import sys
import time

import torch

from sessionrec import paths
from sessionrec.cli import run, write_json
from sessionrec.evaluation import evaluate_test
from sessionrec.graphs.store import GraphStore
from sessionrec.models import REGISTRY, build_model
from sessionrec.params import ParamsError, load_params
from sessionrec.training.loop import pick_device, set_threads
from sessionrec.training.run import train_and_choose


def main() -> None:
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        raise ValueError("usage: python src/benchmark.py MODEL SEED")
    name, seed = sys.argv[1], int(sys.argv[2])
    if name not in REGISTRY:
        raise ParamsError(f"benchmark.models: unknown model {name!r}; available: {sorted(REGISTRY)}")
    params = load_params(paths.PARAMS)
    params = dataclasses.replace(params, model=dataclasses.replace(params.model, name=name, seed=seed))
    threads = set_threads(params.model.num_threads)
    t = train_and_choose(params)
    device = pick_device()
    model = build_model(t.config)
    model.load_state_dict(t.state)
    model.to(device).eval()
    test = GraphStore(paths.graph_store("test"))
    ep = params.evaluate
    t0 = time.perf_counter()
    metrics, _ = evaluate_test(model, test, ep.top_k, ep.ties, ep.batch_size, device, t.config["n_items"])
    infer = time.perf_counter() - t0
    out = {"model": name, "seed": seed, **metrics, "best_epoch": t.best_epoch,
           "val_R@20": t.val["R@20"], "val_MRR@20": t.val["MRR@20"],
           "train_seconds": round(t.seconds, 3),
           "train_examples_per_second": round(t.examples_seen / t.seconds, 1) if t.examples_seen else None,
           "inference_ms_per_session": round(1000 * infer / max(metrics["examples"], 1), 4),
           "threads": threads, "device": str(device), "torch": torch.__version__}
    write_json(paths.BENCHMARK_RUNS / f"{name}-{seed}.json", out)
    logging.info("benchmark %s seed %d: test R@20 %.4f, MRR@20 %.4f; fit %.1fs, %.3f ms/session", name, seed,
                 metrics["R@20"], metrics["MRR@20"], t.seconds, out["inference_ms_per_session"])


if __name__ == "__main__":
    run(main)
