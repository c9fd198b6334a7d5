"""Train one model from validated params on the split and graph outputs: choose on validation, then refit.

Shared by the ``train`` stage (with DVCLive and a resumable checkpoint) and the ``benchmark`` stage (many models and
seeds, timed). Paths are those of ``sessionrec.paths``, relative to the project root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from sessionrec import paths
from sessionrec.graphs.store import GraphStore
from sessionrec.models import COMPOSITE, KINDS, registry
from sessionrec.params import Params
from sessionrec.training.checkpoint import Checkpoint
from sessionrec.training.loop import TrainConfig, fit, new_model, refit

log = logging.getLogger(__name__)


def model_config(params: Params) -> dict:
    """What a checkpoint needs to rebuild the model (``build_model(config)``): ``model.*`` and the split's
    catalogue size and vocabularies, as ``models.registry.model_config`` picks them for ``model.name``."""
    encoders = json.loads((paths.SPLIT / "encoders.json").read_text())
    knobs = {**dataclasses.asdict(params.model), "vocab_sizes": encoders["vocab_sizes"]}
    return registry.model_config(params.model.name, encoders["n_items"], knobs)


def train_config(params: Params) -> TrainConfig:
    mp = params.model
    return TrainConfig(lr=mp.lr, weight_decay=mp.weight_decay, batch_size=mp.batch_size, epochs=mp.epochs,
                       use_scheduler=mp.use_scheduler, patience=mp.patience, seed=mp.seed,
                       top_k=tuple(params.evaluate.top_k), ties=params.evaluate.ties, loss=mp.loss,
                       n_sample=mp.n_sample, sample_alpha=mp.sample_alpha, logq=mp.logq,
                       optimizer=mp.optimizer, precision=mp.precision, epoch_examples=mp.epoch_examples,
                       eval_batch_size=params.evaluate.batch_size, val_examples=mp.val_examples)


VAL_SAMPLE_SEED = 0  # model.val_examples: one sample for every model and model.seed, so all choose on the same examples


def open_val(cfg: TrainConfig) -> tuple[GraphStore, int]:
    """The validation store every choice is made on (all of it, or the seeded sample ``model.val_examples``) and
    the number of validation examples in all."""
    val = GraphStore(paths.graph_store("val"))
    total = len(val)
    val.sample(cfg.val_examples, VAL_SAMPLE_SEED)
    if len(val) < total:
        log.info("validation on a seeded sample of %d of its %d examples (model.val_examples)", len(val), total)
    return val, total


def read_events(split: str) -> dict:
    """The clicks of a split as numpy arrays ``session``, ``item``, ``ts`` (sorted by session, then time)."""
    table = pq.read_table(paths.SPLIT / f"{split}.parquet", columns=["session", "item", "ts"])
    return {c: table.column(c).to_numpy() for c in table.column_names}


def fingerprint(config: dict, cfg: TrainConfig) -> str:
    """What a resumable checkpoint must match: the model, every training knob but the epoch cap, the bytes of the
    training inputs, and the code that trains (the model and training packages, the store and the metrics).
    ``num_threads`` is left out (it changes speed, not the result); so is ``epochs``, so raising it continues a
    finished run."""
    h = hashlib.sha256(json.dumps({"config": config, "train": {**dataclasses.asdict(cfg), "epochs": None}},
                                  sort_keys=True, default=list).encode())
    lib = Path(__file__).resolve().parents[1]
    code = sorted([*(lib / "models").glob("*.py"), *(lib / "training").glob("*.py"), lib / "graphs" / "batch.py", lib / "graphs" / "store.py",
                   lib / "metrics.py", lib / "scoring.py", lib / "runtime.py"])
    for path in (paths.SPLIT / "encoders.json", paths.SPLIT / "train.parquet",
                 paths.graph_store("train"), paths.graph_store("val"), *code):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@dataclass
class Trained:
    config: dict
    state: dict  # the model to test: refitted on train + validation when params.model.refit
    chosen_state: dict  # the model chosen on validation (trained on train only); ``state`` without a refit
    best_epoch: int | None  # None for the hybrid (each network has its own: ``parts``)
    val: dict  # validation metrics of the chosen epoch (before any refit)
    history: list
    seconds: float  # fitting time: epochs on train with validation, plus the refit (the hybrid: its parts' too)
    examples_seen: int  # training examples passed through the model (all epochs, refit included)
    parts: dict = dataclasses.field(default_factory=dict)  # the hybrid: {network: its best epoch}


def with_model(params: Params, **changes) -> Params:
    return dataclasses.replace(params, model=dataclasses.replace(params.model, **changes))


def train_and_choose(params: Params, live=None, resumable: bool = False, given: dict | None = None,
                     checkpoint_path: Path = paths.CHECKPOINT) -> Trained:
    """Fit ``params.model.name``, choose on validation, refit when asked. For the hybrid, each network of
    ``model.hybrid_nets`` is trained first (or taken from ``given``: ``{name: Trained}``, e.g. the benchmark's own
    runs of those networks with the same params and seed), then the weights are chosen on validation.
    ``resumable``: resume from ``checkpoint_path`` and keep it up to date (the hybrid: one checkpoint per network,
    ``paths.hybrid_checkpoint``)."""
    if KINDS[params.model.name] == COMPOSITE:
        return _train_hybrid(params, live, given or {}, resumable)
    config, cfg = model_config(params), train_config(params)
    events, val_events = read_events("train"), read_events("val")
    train, (val, n_val) = GraphStore(paths.graph_store("train")), open_val(cfg)  # n_val: all, as the refit trains
    n_train = len(train)
    checkpoint = Checkpoint(checkpoint_path, fingerprint(config, cfg)) if resumable else None
    t0 = time.perf_counter()
    f = fit(new_model(config, cfg.seed), train, val, cfg, live=live, train_events=events, checkpoint=checkpoint)
    train.close()
    val.close()  # LMDB opens an environment once per process: the refit reopens both as one store
    epoch, state = f.best_epoch, f.state
    seen = n_train * len(f.history) if epoch else 0
    if params.model.refit:  # the choice is made; now the chosen configuration on train + validation
        lrs = [row["lr"] for row in f.history[:epoch]] if epoch else []
        both = {k: np.concatenate([events[k], val_events[k]]) for k in events}
        state = _refit_once(checkpoint, cfg, lrs, lambda: refit(
            new_model(config, cfg.seed), GraphStore([paths.graph_store("train"), paths.graph_store("val")]), cfg,
            lrs, train_events=both))
        seen += (n_train + n_val) * len(lrs)
    return Trained(config, state, f.state, epoch, f.val, f.history, time.perf_counter() - t0, seen)


def _refit_once(checkpoint: Checkpoint | None, cfg: TrainConfig, lrs: list, run_refit) -> dict:
    """``run_refit()``, its result kept in the checkpoint next to the learning rates it replayed: a rerun after a
    kill later in the stage (in the hybrid's next network, say) takes it from there instead of refitting again. A
    kill during the refit reruns the refit. Models fitted on clicks (no epochs) refit in seconds and keep nothing."""
    saved = checkpoint.load(cfg.epochs) if checkpoint is not None and lrs else None
    if saved is None:
        return run_refit()
    if saved.get("refit_lrs") == lrs:
        log.info("refit on train + val taken from %s (%d epochs)", checkpoint.path, len(lrs))
        return saved["refit_state"]
    state = run_refit()
    checkpoint.save({**saved, "refit_lrs": lrs, "refit_state": state})
    return state


def _train_hybrid(params: Params, live, given: dict, resumable: bool) -> Trained:
    config, cfg = model_config(params), train_config(params)
    nets = {}
    for name in params.model.hybrid_nets:
        if name in given:
            nets[name] = given[name]
        else:
            log.info("hybrid: training its network %s", name)
            nets[name] = train_and_choose(with_model(params, name=name), resumable=resumable,
                                          checkpoint_path=paths.hybrid_checkpoint(name))
    t0 = time.perf_counter()
    events = read_events("train")
    val, _ = open_val(cfg)
    model = new_model(config, cfg.seed)
    model.load_nets({n: t.chosen_state for n, t in nets.items()})
    f = fit(model, None, val, cfg, live=live, train_events=events)
    val.close()
    state = f.state
    if params.model.refit:  # the weights stay; every part is refitted on train + validation
        val_events = read_events("val")
        both = {k: np.concatenate([events[k], val_events[k]]) for k in events}
        model = new_model(config, cfg.seed)
        model.load_state_dict(f.state)
        model.load_nets({n: t.state for n, t in nets.items()})
        state = refit(model, None, cfg, [], train_events=both)
    return Trained(config, state, f.state, None, f.val, f.history,
                   sum(t.seconds for t in nets.values()) + time.perf_counter() - t0,
                   sum(t.examples_seen for t in nets.values()), {n: t.best_epoch for n, t in nets.items()})
