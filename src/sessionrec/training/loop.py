"""The one training loop for every neural model, checkpoints, and scoring a graph store.

``fit`` runs, per epoch: a shuffled pass over the training store (full-catalogue cross-entropy, Adam), a no-grad pass
over the validation store (loss and R@K / MRR@K / NDCG@K with the tie rule), one DVCLive step, ReduceLROnPlateau on
the validation loss when enabled, and early stopping on validation MRR@20 with ``patience``. The best epoch by
validation MRR@20 is kept as the checkpoint; the test split is never seen here.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sessionrec.graphs.store import GraphStore
from sessionrec.metrics import RankingMetrics
from sessionrec.models import build_model

log = logging.getLogger(__name__)
SELECT_ON = "MRR@20"


@dataclass(frozen=True)
class TrainConfig:
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    use_scheduler: bool
    patience: int
    seed: int
    top_k: tuple = (1, 5, 10, 20)
    ties: str = "expected"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(num_threads: int) -> int:
    """``num_threads`` > 0 wins; else ``OMP_NUM_THREADS``; else torch's default. Returns the count in use."""
    n = num_threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def score_store(model, store: GraphStore, batch_size: int, ks, ties: str, device, keep_examples: bool = False,
                n_items: int | None = None, desc: str = "eval"):
    """Mean loss and ranking metrics of ``model`` on every example of ``store``; returns (loss, RankingMetrics)."""
    model.eval()
    acc = RankingMetrics(ks, ties, n_items=n_items, keep_examples=keep_examples)
    total, n = 0.0, 0
    for batch in tqdm(store.iter_batches(batch_size), total=-(-len(store) // batch_size), desc=desc, leave=False):
        batch = batch.to(device)
        scores = model(batch)
        total += float(F.cross_entropy(scores, batch.target, reduction="sum"))
        n += batch.size
        acc.update(scores, batch.target, length=batch.length)  # on the model's device; no (B, N) copy
    return total / max(n, 1), acc


def validate(model, val: GraphStore, cfg: TrainConfig, device, live=None, **logged) -> dict:
    """Validation loss and metrics; with ``live``, log them (and ``logged``) as one DVCLive step."""
    val_loss, acc = score_store(model, val, cfg.batch_size, cfg.top_k, cfg.ties, device)
    metrics = {"loss": val_loss, **acc.result()}
    if live is not None:
        for k, v in logged.items():
            live.log_metric(k, v)
        for k, v in metrics.items():
            live.log_metric(f"val/{k}", v)
        live.next_step()
    return metrics


def fit(config: dict, train: GraphStore, val: GraphStore, cfg: TrainConfig, live=None, item_counts=None):
    """Train the model that ``config`` describes; return ``(best_state_dict, best_epoch, best_val_metrics)``."""
    seed_everything(cfg.seed)
    device = pick_device()
    model = build_model(config).to(device)
    if not model.trainable:
        if item_counts is not None:
            model.fit_counts(item_counts.to(device))
        return copy.deepcopy(model.state_dict()), 0, validate(model, val, cfg, device, live)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=1) \
        if cfg.use_scheduler else None
    best = (-1.0, None, 0, {})
    bad_epochs = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0, total, n = time.time(), 0.0, 0
        bar = tqdm(train.iter_batches(cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch),
                   total=-(-len(train) // cfg.batch_size), desc=f"epoch {epoch}", leave=False)
        for batch in bar:
            batch = batch.to(device)
            loss = F.cross_entropy(model(batch), batch.target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * batch.size
            n += batch.size
        train_loss = total / max(n, 1)
        lr = opt.param_groups[0]["lr"]
        metrics = validate(model, val, cfg, device, live, **{"train/loss": train_loss, "lr": lr})
        if sched is not None:
            sched.step(metrics["loss"])
        log.info("epoch %d: train loss %.4f, val loss %.4f, val R@20 %.4f, val MRR@20 %.4f (%.1fs)", epoch,
                 train_loss, metrics["loss"], metrics["R@20"], metrics["MRR@20"], time.time() - t0)
        if metrics[SELECT_ON] > best[0]:
            best = (metrics[SELECT_ON], copy.deepcopy(model.state_dict()), epoch, metrics)
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                log.info("early stop after epoch %d: no val %s gain for %d epochs", epoch, SELECT_ON, bad_epochs)
                break
    return best[1], best[2], best[3]


def save_checkpoint(path, config: dict, state_dict: dict, extra: dict | None = None) -> None:
    """Plain tensors and Python values only, so ``torch.load(weights_only=True)`` can read it back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": config, "state_dict": state_dict, **(extra or {})}, path)


def load_model(path, device=None):
    """Model and checkpoint dict from ``path``; the one loader used by evaluate and serving."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found (run the train stage)")
    ckpt = torch.load(path, map_location=device or "cpu", weights_only=True)
    model = build_model(ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt
