"""The one training loop for every neural model (checkpoints: ``training.checkpoint``; scoring: ``scoring``).

``fit`` runs, per epoch: a shuffled pass over the training store (``model.loss``: full-catalogue cross-entropy or a
sampled softmax, ``training.loss``; Adam), a no-grad pass
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
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from sessionrec import distributed
from sessionrec.graphs.batch import prefetched
from sessionrec.graphs.store import GraphStore
from sessionrec.models import COMPOSITE, NETWORK, build_model
from sessionrec.runtime import pick_device, seed_everything
from sessionrec.scoring import score_store
from sessionrec.training.blend import choose_weights
from sessionrec.training.checkpoint import Checkpoint, rng_state, set_rng_state
from sessionrec.training.loss import FullSoftmax, make_loss

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
    loss: str = "full"  # training.loss: full | sampled
    n_sample: int = 2048
    sample_alpha: float = 0.5
    logq: float = 1.0
    optimizer: str = "adam"  # make_optimizer: adam | lazy_adam
    precision: str = "fp32"  # fp32 | bf16: each training step's forward and loss under bfloat16 autocast
    epoch_examples: int = 0  # examples per epoch (GraphStore.batch_order's per_epoch); 0 = the whole store
    eval_batch_size: int = 512  # rows validation reads and scores at once (evaluate.batch_size)
    val_examples: int = 0  # validation on a seeded sample of this many examples (GraphStore.sample); 0 = all


def validate(model, val: GraphStore, cfg: TrainConfig, device) -> dict:
    """Validation loss and R@K / MRR@K / NDCG@K under the tie rule, read ``cfg.eval_batch_size`` rows at a time (as
    the evaluate stage reads the test split): at 200k products the scoring matmul over 128 rows ran at half the speed
    of 512 (``python benchmarks/speed/evaluate.py --items 200000 --batch-sizes 128 512``)."""
    val_loss, acc = score_store(model, val, cfg.eval_batch_size, cfg.top_k, cfg.ties, device)
    return {"loss": val_loss, **acc.result()}


def log_step(live, row: dict) -> None:
    """One DVCLive step from a flat dict (``train/loss``, ``lr``, ``val/...``); no-op without ``live``."""
    if live is None:
        return
    for k, v in row.items():
        live.log_metric(k, v)
    live.next_step()


OPTIMIZERS = ("adam", "lazy_adam")


def make_optimizer(model, lr: float, weight_decay: float, kind: str = "adam") -> torch.optim.Optimizer:
    """``adam``: Adam with L2 ``weight_decay``, as one fused kernel over all parameters: on CPU a third of the
    per-parameter loop's step time, about 10% of a graph model's epoch here. ``lazy_adam``: ``LazyAdam``, for the
    sampled loss at a large catalogue."""
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    if kind != "lazy_adam":
        raise ValueError(f"model.optimizer: expected one of {OPTIMIZERS}, got {kind!r}")
    return LazyAdam(model, lr, weight_decay)


class LazyAdam(torch.optim.Optimizer):
    """Adam that updates only the catalogue rows a batch touched: torch's ``SparseAdam`` on the ``(N, d)`` product
    table (made to give sparse gradients, ``CatalogueOutput.sparse_catalogue``), fused ``Adam`` with L2
    ``weight_decay`` on every other parameter. With the sampled loss a batch looks up a few thousand of the table's
    rows, yet dense Adam reads and writes all ``N`` rows and both moments at every step: at 200k products most of a
    step. As in TensorFlow's ``LazyAdam``, a row's moments decay only on the steps that touch it, and the table has no
    L2 penalty (``SparseAdam`` has none). ``param_groups`` are both optimizers' groups (the table's last), so a
    learning-rate schedule or refit sets both."""

    def __init__(self, model, lr: float, weight_decay: float):
        if distributed.world()[1] > 1 and torch.distributed.get_backend() != "gloo":
            raise ValueError("model.optimizer: lazy_adam's sparse gradients can be averaged across processes by "
                             f"gloo only, not {torch.distributed.get_backend()} (GPUs): use model.optimizer: adam")
        model.sparse_catalogue(True)
        table = model.output_layer()[0]
        dense = [p for p in model.parameters() if p is not table]
        self.dense = torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay, fused=True)
        self.table = torch.optim.SparseAdam([table], lr=lr)
        super().__init__([*self.dense.param_groups, *self.table.param_groups], {})
        self.param_groups = [*self.dense.param_groups, *self.table.param_groups]  # the same dicts, not copies

    @torch.no_grad()
    def step(self, closure=None):
        self.dense.step()
        self.table.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none)
        self.table.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return {"dense": self.dense.state_dict(), "table": self.table.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.dense.load_state_dict(state["dense"])
        self.table.load_state_dict(state["table"])


def fit_clicks(model, train_events) -> None:
    """Fit the part of ``model`` that learns from the training clicks (pop, session-kNN, the hybrid's STAN), if any.
    ``train_events``: numpy arrays ``session``, ``item``, ``ts``, sorted by session then time."""
    if model.kind == NETWORK:
        return
    if train_events is None:
        raise ValueError(f"{type(model).__name__} is fitted on the training clicks: pass train_events")
    model.fit_events(train_events["session"], train_events["item"], train_events["ts"])


class TrainStep(torch.nn.Module):
    """``model`` and its loss as one module, the unit ``DistributedDataParallel`` wraps (``distributed.wrap``): its
    forward is the loss of a batch, whatever parts of the model the loss calls (``encode`` and ``score_items`` for the
    sampled one)."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


def train_epoch(model, opt, train: GraphStore, cfg: TrainConfig, epoch: int, device, step=None,
                prefetch: bool | None = None) -> float:
    """One shuffled pass (order from ``seed`` and ``epoch``; ``cfg.epoch_examples`` > 0: that many examples of
    ``GraphStore.batch_order``'s stream of passes) of ``step`` (a ``TrainStep``, possibly wrapped for
    data-parallel training; default ``model`` with the full-catalogue cross-entropy); the mean loss over every rank's
    examples. Inside a process group each rank takes its rows ``rank::world`` of every global batch and scales its
    loss by its share, so the averaged gradient is the global batch's (``sessionrec.distributed``).

    ``cfg.precision`` bf16 runs each step's forward and loss under bfloat16 autocast (the backward follows its
    dtypes). ``prefetch`` (default: on a GPU) reads, collates and pins the next batches on a background thread while
    the device trains on this one; on CPU the thread would take a core from the step's own threads."""
    step = step or TrainStep(model, FullSoftmax())
    step.train()
    rank, world = distributed.world()
    total, n = 0.0, 0
    per_epoch = cfg.epoch_examples if len(train) else 0
    order = tqdm(train.batch_order(cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch, per_epoch=per_epoch),
                 total=-(-(per_epoch or len(train)) // cfg.batch_size), desc=f"epoch {epoch}", leave=False,
                 disable=rank > 0)
    pin = device.type == "cuda"
    # a last batch too small to give every rank a row: every rank skips it alike
    batches = ((train.batch(idx[rank::world]).pinned(pin), len(idx)) for idx in order if len(idx) >= world)
    for batch, global_rows in (prefetched(batches) if (pin if prefetch is None else prefetch) else batches):
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            loss = step(batch)
        opt.zero_grad(set_to_none=True)
        (loss if world == 1 else loss * (batch.size * world / global_rows)).backward()
        opt.step()
        total += loss.item() * batch.size
        n += batch.size
    total, n = distributed.all_sum([total, float(n)])
    return total / max(n, 1)


def training_loss(model, cfg: TrainConfig, train_events=None):
    """The loss ``cfg.loss`` for ``model`` (the sampled one counts popularity on ``train_events["item"]``)."""
    items = None if train_events is None else train_events["item"]
    return make_loss(cfg.loss, model.n_items, items, cfg.n_sample, cfg.sample_alpha, cfg.logq)


def new_model(config: dict, seed: int) -> torch.nn.Module:
    """The model ``config`` describes (``models.registry.model_config``), its weights drawn after seeding every RNG
    with ``seed``, on the training device. Training continues the same RNG streams (batch order aside: that is drawn
    from ``seed`` and the epoch), so a run is fixed by ``config`` and ``seed``."""
    seed_everything(seed)
    return build_model(config).to(pick_device())


@dataclass
class Fitted:
    """What ``fit`` chose on validation: the model's state at its best epoch (``state``), that epoch (0 for models
    without epochs), its validation metrics, the per-epoch log rows, and for a composite model the validation
    MRR@20 of every weight vector tried (``curve``)."""

    state: dict
    best_epoch: int
    val: dict
    history: list
    curve: dict = field(default_factory=dict)


def fit(model, train: GraphStore | None, val: GraphStore, cfg: TrainConfig, live=None, train_events=None,
        checkpoint: Checkpoint | None = None) -> Fitted:
    """Fit ``model`` (from ``new_model``) by its kind and choose on ``val``; ``model`` is left as trained.

    - ``network``: epochs of ``train`` (see the module docstring); with ``checkpoint``, resume from it when it
      matches and save it after every epoch;
    - ``clicks``: ``fit_events`` on ``train_events`` (numpy arrays ``session``, ``item``, ``ts``, sorted by session
      then time);
    - ``composite``: its networks already loaded (``load_nets``, each trained and chosen alone), its click part
      fitted on ``train_events``, then its weights chosen on ``val`` (``training.blend.choose_weights``).
    Every kind logs its validation rows to ``live`` (DVCLive), one step per epoch.
    """
    device = pick_device()
    t0 = time.perf_counter()
    fit_clicks(model, train_events)
    if model.kind != NETWORK:
        t1 = time.perf_counter()
        curve = choose_weights(model, val, cfg.batch_size, cfg.ties, device) if model.kind == COMPOSITE else {}
        t2 = time.perf_counter()
        metrics = validate(model, val, cfg, device)
        t3 = time.perf_counter()
        log.info("%s: fitted on the training clicks in %.1fs, %sa validation pass over %d examples in %.1fs "
                 "(%.0f a minute)", type(model).__name__, t1 - t0,
                 f"weights chosen in {t2 - t1:.1f}s, " if curve else "", len(val), t3 - t2,
                 60 * len(val) / max(t3 - t2, 1e-9))
        if curve:
            log.info("weights chosen on validation: %s -> val R@20 %.4f, MRR@20 %.4f (best 5 of %d: %s)",
                     dict(zip(model.part_names, model.weights.tolist())), metrics["R@20"], metrics["MRR@20"],
                     len(curve), {str(w): round(v, 4) for w, v in sorted(curve.items(), key=lambda kv: -kv[1])[:5]})
        row = {f"val/{k}": v for k, v in metrics.items()}
        if checkpoint is not None:  # nothing to resume, but the stage declares the output
            checkpoint.save({"epoch": 0, "stopped": True, "history": [row]})
        log_step(live, row)
        return Fitted(copy.deepcopy(model.state_dict()), 0, metrics, [row], curve)
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.optimizer)
    step = distributed.wrap(TrainStep(model, training_loss(model, cfg, train_events)))
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
        train_loss = train_epoch(model, opt, train, cfg, epoch, device, step)
        t1 = time.time()
        lr = opt.param_groups[0]["lr"]
        metrics = validate(model, val, cfg, device)
        row = {"train/loss": train_loss, "lr": lr, **{f"val/{k}": v for k, v in metrics.items()}}
        if sched is not None:
            sched.step(metrics["loss"])
        log.info("epoch %d: train loss %.4f, val loss %.4f, val R@20 %.4f, val MRR@20 %.4f (%.1fs: train %.1fs, "
                 "validation %.1fs)", epoch, train_loss, metrics["loss"], metrics["R@20"], metrics["MRR@20"],
                 time.time() - t0, t1 - t0, time.time() - t1)
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
    return Fitted(st["best_state"], st["best_epoch"], st["best_metrics"], st["history"])


def refit(model, train_and_val: GraphStore | None, cfg: TrainConfig, lrs: list, train_events=None) -> dict:
    """After the choice on validation, the same configuration on train + validation; returns its state. ``model``
    comes fresh from ``new_model`` (a composite one with its chosen state and its networks' refitted weights
    loaded); click parts refit on all of ``train_events``; a network trains ``len(lrs)`` epochs (the chosen count)
    at the learning rates the chosen run used, epoch by epoch."""
    device = pick_device()
    fit_clicks(model, train_events)
    if model.kind != NETWORK:
        return copy.deepcopy(model.state_dict())
    opt = make_optimizer(model, lrs[0], cfg.weight_decay, cfg.optimizer)
    step = distributed.wrap(TrainStep(model, training_loss(model, cfg, train_events)))
    for epoch, lr in enumerate(lrs, 1):
        for group in opt.param_groups:
            group["lr"] = lr
        t0 = time.time()
        loss = train_epoch(model, opt, train_and_val, cfg, epoch, device, step)
        log.info("refit epoch %d/%d on train + val: loss %.4f, lr %g (%.1fs)", epoch, len(lrs), loss, lr,
                 time.time() - t0)
    return copy.deepcopy(model.state_dict())
