"""Stage ``benchmark`` (one cell of the models x seeds matrix): train one model with one seed exactly as the train
stage does (epochs chosen on validation; the refit when ``benchmark.refit``), test it once, and time both.

    python src/benchmark.py MODEL SEED   ->  metrics/benchmark/MODEL-SEED.json, models/benchmark/MODEL-SEED.pt
    python src/benchmark.py hybrid SEED  ->  metrics/benchmark-hybrid/hybrid-SEED.json, models/benchmark-hybrid/...

For ``hybrid`` (stage ``benchmark_hybrid``) the networks of ``model.hybrid_nets`` are not trained again: their runs
of this seed are read back from ``models/benchmark/``, so the hybrid blends the very networks of the other rows. Its
training seconds are those networks' plus its own (STAN and the choice of weights).
"""

import logging
import sys
import time

import torch
import yaml

from sessionrec import paths, provenance
from sessionrec.cli import run, write_json
from sessionrec.graphs.store import GraphStore
from sessionrec.models import COMPOSITE, KINDS, build_model
from sessionrec.params import ParamsError, load_params
from sessionrec.runtime import pick_device, set_threads
from sessionrec.scoring import evaluate_test, sample_test
from sessionrec.training.checkpoint import load_verified, save_checkpoint
from sessionrec.training.run import Trained, model_config, train_and_choose, with_model

RUN_FIELDS = ("best_epoch", "val", "seconds", "examples_seen")


def load_run(name: str, seed: int) -> Trained:
    """A network's benchmark run of ``seed``, as ``train_and_choose`` returned it."""
    path = paths.benchmark_run(name, seed, "pt")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no benchmark run of {name} with seed {seed} (run its benchmark cell)")
    ckpt = load_verified(path)
    return Trained(ckpt["config"], ckpt["state_dict"], ckpt["chosen_state"], history=[],
                   **{k: ckpt[k] for k in RUN_FIELDS})


def check_hybrid_deps(nets) -> None:
    """The hybrid's DVC stage must depend on exactly the runs it reads (``models/benchmark/NET-SEED.pt`` for
    ``model.hybrid_nets``); ``benchmarks/dvc.yaml`` lists them by name."""
    stage = yaml.safe_load(paths.BENCHMARK_PIPELINE.read_text())["stages"]["benchmark_hybrid"]["do"]
    listed = {d for d in stage["deps"] if d.startswith(f"{paths.BENCHMARK_MODELS}/")}
    wanted = {f"{paths.BENCHMARK_MODELS}/{net}-${{item}}.pt" for net in nets}
    if listed != wanted:
        raise ParamsError(f"model.hybrid_nets {list(nets)}: benchmarks/dvc.yaml's benchmark_hybrid stage depends on "
                          f"{sorted(listed)}; make its deps {sorted(wanted)}")


def main() -> None:
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        raise ValueError("usage: python src/benchmark.py MODEL SEED")
    name, seed = sys.argv[1], int(sys.argv[2])
    if name not in KINDS:
        raise ParamsError(f"benchmark.models: unknown model {name!r}; available: {sorted(KINDS)}")
    params = load_params(paths.PARAMS)
    params = with_model(params, name=name, seed=seed, refit=params.benchmark.refit)
    inputs = provenance.inputs(params)  # before any store is opened here (it reads their meta records)
    threads = set_threads(params.model.num_threads)
    given = {}
    if KINDS[name] == COMPOSITE:
        check_hybrid_deps(params.model.hybrid_nets)
        given = {net: load_run(net, seed) for net in params.model.hybrid_nets}
        for net, t in given.items():
            if t.config != model_config(with_model(params, name=net)):
                raise ValueError(f"{paths.benchmark_run(net, seed, 'pt')}: made with other params than this hybrid's; "
                                 f"rerun `dvc repro benchmarks/dvc.yaml`")
    t = train_and_choose(params, given=given)
    save_checkpoint(paths.benchmark_run(name, seed, "pt"), t.config, t.state,
                    {"chosen_state": t.chosen_state, "best_epoch": t.best_epoch, "val": t.val, "seconds": t.seconds,
                     "examples_seen": t.examples_seen})
    device = pick_device()
    model = build_model(t.config)
    model.load_state_dict(t.state)
    model.to(device).eval()
    test = GraphStore(paths.graph_store("test"))
    ep = params.evaluate
    total = sample_test(test, ep.test_examples)  # the evaluate stage's sample, if any: every cell on the same examples
    t0 = time.perf_counter()
    metrics, _ = evaluate_test(model, test, ep.top_k, ep.ties, ep.batch_size, device, t.config["n_items"], total)
    infer = time.perf_counter() - t0
    out = {"model": name, "seed": seed, **metrics, "best_epoch": t.best_epoch,
           **({"parts": t.parts} if t.parts else {}),
           **({"weights": dict(zip(model.part_names, model.weights.tolist()))} if KINDS[name] == COMPOSITE else {}),
           "val_R@20": t.val["R@20"], "val_MRR@20": t.val["MRR@20"], "refit": params.model.refit,
           "train_seconds": round(t.seconds, 3),
           "train_examples_per_second": round(t.examples_seen / t.seconds, 1) if t.examples_seen else None,
           "inference_ms_per_session": round(1000 * infer / max(metrics["examples"], 1), 4),
           "threads": threads, "device": str(device), "torch": torch.__version__,
           "inputs": inputs}  # benchmark_report aggregates only cells of the same inputs
    write_json(paths.benchmark_run(name, seed, "json"), out)
    logging.info("benchmark %s seed %d: test R@20 %.4f, MRR@20 %.4f; fit %.1fs, %.3f ms/session", name, seed,
                 metrics["R@20"], metrics["MRR@20"], t.seconds, out["inference_ms_per_session"])


if __name__ == "__main__":
    run(main)
