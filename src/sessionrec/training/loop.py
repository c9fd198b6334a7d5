"""The one training loop for every neural model (checkpoints: ``training.checkpoint``; scoring: ``scoring``).

``fit`` runs, per epoch: a shuffled pass over the training store (full-catalogue cross-entropy, Adam), a no-grad pass
over the validation store (loss and R@K / MRR@K / NDCG@K with the tie rule), one DVCLive step, ReduceLROnPlateau on
the validation loss when enabled, and early stopping on validation MRR@20 with ``patience``. The best epoch by
validation MRR@20 is kept as the checkpoint; the test split is never seen here. With a ``Checkpoint``, the whole
training state is saved after every epoch and a killed run resumes from the last completed epoch with the same
result as an uninterrupted one.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from sessionrec.graphs.store import GraphStore
from sessionrec.models import CLICKS, COMPOSITE, NETWORK, build_model
from sessionrec.runtime import pick_device, seed_everything
from sessionrec.scoring import score_store
from sessionrec.training.checkpoint import Checkpoint, rng_state, set_rng_state

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


def validate(model, val: GraphStore, cfg: TrainConfig, device) -> dict:
    """Validation loss and R@K / MRR@K / NDCG@K under the tie rule."""
    val_loss, acc = score_store(model, val, cfg.batch_size, cfg.top_k, cfg.ties, device)
    return {"loss": val_loss, **acc.result()}


def log_step(live, row: dict) -> None:
    """One DVCLive step from a flat dict (``train/loss``, ``lr``, ``val/...``); no-op without ``live``."""
    if live is None:
        return
    for k, v in row.items():
        live.log_metric(k, v)
    live.next_step()


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with L2 ``weight_decay``, as one fused kernel over all parameters: on CPU a third of the
    per-parameter loop's step time, about 10% of a graph model's epoch here."""
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def fit_clicks(model, train_events) -> None:
    """Fit the part of ``model`` that learns from the training clicks (pop, session-kNN, the hybrid's STAN), if any.
    ``train_events``: numpy arrays ``session``, ``item``, ``ts``, sorted by session then time."""
    if model.kind == NETWORK:
        return
    if train_events is None:
        raise ValueError(f"{type(model).__name__} is fitted on the training clicks: pass train_events")
    model.fit_events(train_events["session"], train_events["item"], train_events["ts"])


def train_epoch(model, opt, train: GraphStore, cfg: TrainConfig, epoch: int, device) -> float:
    """One shuffled pass (order from ``seed`` and ``epoch``) of full-catalogue cross-entropy; the mean loss."""
    model.train()
    total, n = 0.0, 0
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
    return total / max(n, 1)


def refit(config: dict, train_and_val: GraphStore, cfg: TrainConfig, lrs: list, train_events=None,
          chosen_state: dict | None = None, net_states: dict | None = None) -> dict:
    """After the choice on validation, the same model on train + validation: ``len(lrs)`` epochs (the chosen
    count) at the learning rates the chosen run used, epoch by epoch; models fitted on clicks refit on all of them;
    values tuned on validation (a model's ``tuned_buffers``) are taken from ``chosen_state``; a composite model
    (the hybrid) takes its networks' refitted weights from ``net_states``."""
    seed_everything(cfg.seed)
    device = pick_device()
    model = build_model(config).to(device)
    fit_clicks(model, train_events)
    if model.kind == COMPOSITE:
        for name in model.tuned_buffers:
            getattr(model, name).copy_(chosen_state[name])
        model.load_nets(net_states)
    if model.kind != NETWORK:
        return copy.deepcopy(model.state_dict())
    opt = make_optimizer(model, lrs[0], cfg.weight_decay)
    for epoch, lr in enumerate(lrs, 1):
        for group in opt.param_groups:
            group["lr"] = lr
        t0 = time.time()
        loss = train_epoch(model, opt, train_and_val, cfg, epoch, device)
        log.info("refit epoch %d/%d on train + val: loss %.4f, lr %g (%.1fs)", epoch, len(lrs), loss, lr,
                 time.time() - t0)
    return copy.deepcopy(model.state_dict())


def fit(config: dict, train: GraphStore, val: GraphStore, cfg: TrainConfig, live=None, train_events=None,
        checkpoint: Checkpoint | None = None):
    """Train the model that ``config`` describes; return ``(best_state_dict, best_epoch, best_val_metrics, history)``,
    ``history`` the per-epoch log rows (``train/loss``, ``lr``, ``val/...``).

    ``train_events`` (dict of numpy arrays ``session``, ``item``, ``ts``, sorted by session then time) fits the
    models that are not trained by gradient. With ``checkpoint``, resume from it when it matches and save it after
    every epoch.
    """
    seed_everything(cfg.seed)
    device = pick_device()
    model = build_model(config).to(device)
    if model.kind == COMPOSITE:
        raise ValueError(f"{config['name']}: its networks are trained one by one (training.run.train_and_choose), "
                         "then fit_blend chooses the weights")
    fit_clicks(model, train_events)
    if model.kind == CLICKS:
        metrics = validate(model, val, cfg, device)
        row = {f"val/{k}": v for k, v in metrics.items()}
        if checkpoint is not None:  # nothing to resume, but the stage declares the output
            checkpoint.save({"epoch": 0, "stopped": True, "history": [row]})
        log_step(live, row)
        return copy.deepcopy(model.state_dict()), 0, metrics, [row]
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=1) \
        if cfg.use_scheduler else None
    st = {"epoch": 0, "best_score": -1.0, "best_state": None, "best_epoch": 0, "best_metrics": {},
          "bad_epochs": 0, "stopped": False, "history": []}
    saved = checkpoint.load(cfg.epochs) if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        if sched is not None:
            sched.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        st = {k: saved[k] for k in st}
        for row in st["history"]:
            log_step(live, row)
        log.info("resumed from %s after epoch %d%s", checkpoint.path, st["epoch"],
                 " (training had already stopped)" if st["stopped"] else "")
    for epoch in range(st["epoch"] + 1, cfg.epochs + 1):
        if st["stopped"]:
            break
        t0 = time.time()
        train_loss = train_epoch(model, opt, train, cfg, epoch, device)
        lr = opt.param_groups[0]["lr"]
        metrics = validate(model, val, cfg, device)
        row = {"train/loss": train_loss, "lr": lr, **{f"val/{k}": v for k, v in metrics.items()}}
        if sched is not None:
            sched.step(metrics["loss"])
        log.info("epoch %d: train loss %.4f, val loss %.4f, val R@20 %.4f, val MRR@20 %.4f (%.1fs)", epoch,
                 train_loss, metrics["loss"], metrics["R@20"], metrics["MRR@20"], time.time() - t0)
        if metrics[SELECT_ON] > st["best_score"]:
            st.update(best_score=metrics[SELECT_ON], best_state=copy.deepcopy(model.state_dict()), best_epoch=epoch,
                      best_metrics=metrics, bad_epochs=0)
        else:
            st["bad_epochs"] += 1
            if st["bad_epochs"] >= cfg.patience:
                log.info("early stop after epoch %d: no val %s gain for %d epochs", epoch, SELECT_ON,
                         st["bad_epochs"])
                st["stopped"] = True
        st["epoch"] = epoch
        st["history"].append(row)
        if checkpoint is not None:
            checkpoint.save({**st, "model": model.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict() if sched is not None else {}, "rng": rng_state()})
        log_step(live, row)
    return st["best_state"], st["best_epoch"], st["best_metrics"], st["history"]


def fit_blend(config: dict, net_states: dict, val: GraphStore, cfg: TrainConfig, train_events) -> tuple:
    """The hybrid (a ``composite`` model): its networks from ``net_states`` (``{name: state_dict}``, each trained
    and chosen on validation alone), its click-based part fitted on ``train_events``, then its weights chosen on
    ``val`` (``model.tune``). Returns ``(state_dict, val_metrics, {weights: val MRR@20})``."""
    seed_everything(cfg.seed)
    device = pick_device()
    model = build_model(config).to(device)
    model.load_nets(net_states)
    fit_clicks(model, train_events)
    curve = model.tune(val, cfg.batch_size, cfg.ties, device)
    metrics = validate(model, val, cfg, device)
    log.info("hybrid weights chosen on validation: %s -> val R@20 %.4f, MRR@20 %.4f (best 5 of %d: %s)",
             dict(zip(model.part_names, model.weights.tolist())), metrics["R@20"], metrics["MRR@20"],
             len(curve), {str(w): round(v, 4) for w, v in sorted(curve.items(), key=lambda kv: -kv[1])[:5]})
    return copy.deepcopy(model.state_dict()), metrics, curve
