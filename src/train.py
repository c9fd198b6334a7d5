"""Stage ``train``: fit ``model.name`` on the train graphs, select the epoch on validation, save the best."""

import dataclasses
import hashlib
import json
import logging

import numpy as np
import pyarrow.parquet as pq
import torch
from dvclive import Live

from sessionrec import paths
from sessionrec.cli import run, write_json
from sessionrec.experiments import plot_curves, read_curve
from sessionrec.graphs.store import GraphStore
from sessionrec.params import load_params
from sessionrec.training.loop import Checkpoint, TrainConfig, fit, save_checkpoint, set_threads


def fingerprint(config: dict, cfg: TrainConfig) -> str:
    """What a resumable checkpoint must match: the model, every training knob but the epoch cap, and the bytes of
    the training inputs. ``num_threads`` is left out (it changes speed, not the result); so is ``epochs``, so raising
    it continues a finished run."""
    h = hashlib.sha256(json.dumps({"config": config, "train": {**dataclasses.asdict(cfg), "epochs": None}},
                                  sort_keys=True, default=list).encode())
    for path in (paths.SPLIT / "encoders.json", paths.SPLIT / "train.parquet",
                 paths.graph_store("train"), paths.graph_store("val")):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def main() -> None:
    params = load_params(paths.PARAMS)
    mp = params.model
    threads = set_threads(mp.num_threads)
    encoders = json.loads((paths.SPLIT / "encoders.json").read_text())
    config = {"name": mp.name, "n_items": encoders["n_items"], "vocab_sizes": encoders["vocab_sizes"],
              "embedding_dim": mp.embedding_dim, "hidden_dim": mp.hidden_dim, "num_iterations": mp.num_iterations,
              "dropout_rate": mp.dropout_rate}
    cfg = TrainConfig(lr=mp.lr, weight_decay=mp.weight_decay, batch_size=mp.batch_size, epochs=mp.epochs,
                      use_scheduler=mp.use_scheduler, patience=mp.patience, seed=mp.seed,
                      top_k=tuple(params.evaluate.top_k), ties=params.evaluate.ties)
    train_items = pq.read_table(paths.SPLIT / "train.parquet", columns=["item"]).column("item").to_numpy()
    counts = torch.from_numpy(np.bincount(train_items, minlength=encoders["n_items"]).astype(np.float32))
    train, val = GraphStore(paths.graph_store("train")), GraphStore(paths.graph_store("val"))
    checkpoint = Checkpoint(paths.CHECKPOINT, fingerprint(config, cfg))
    with Live(str(paths.TRAIN_LIVE), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        state, epoch, metrics = fit(config, train, val, cfg, live=live, item_counts=counts, checkpoint=checkpoint)
    save_checkpoint(paths.MODEL, config, state, {"epoch": epoch, "val": metrics})
    write_json(paths.VAL_METRICS, {"best_epoch": epoch, **metrics})
    names = [m for m in ("val/MRR@20", "val/R@20", "val/loss", "train/loss")
             if (paths.TRAIN_LIVE / "plots" / "metrics" / f"{m}.tsv").exists()]
    plot_curves({mp.name: {m: read_curve(None, m) for m in names}}, paths.TRAINING_PNG)
    logging.info("train %s: best epoch %d, val R@20 %.4f, MRR@20 %.4f (%d threads) -> %s", mp.name, epoch,
                 metrics["R@20"], metrics["MRR@20"], threads, paths.MODEL)


if __name__ == "__main__":
    run(main)
