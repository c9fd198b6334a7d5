"""Checkpoints: the resumable training state of one run (``Checkpoint``), and the saved model that evaluate, the
benchmark and serving load (``save_checkpoint`` / ``load_model``). Plain tensors and Python values only, read with
``torch.load(weights_only=True)``: nothing is unpickled."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

from sessionrec.models import build_model

log = logging.getLogger(__name__)


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
             "numpy_rest": [int(np_state[2]), int(np_state[3]), float(np_state[4])], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    pos, has_gauss, cached = state["numpy_rest"]
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpoint:
    """The resumable training state in one file, written atomically at the end of every epoch.

    It holds the weights, the optimizer and scheduler, the last completed epoch, the RNG states, the early-stopping
    state (best score, best weights, best epoch, epochs without gain, stopped) and the per-epoch log rows, so a
    resumed run replays the DVCLive history and then continues exactly as an uninterrupted run would (batches are
    shuffled from ``seed`` and ``epoch``). ``fingerprint`` names everything the result depends on except the epoch
    cap; a checkpoint with another fingerprint is ignored, with a log line, and training starts from scratch.
    """

    def __init__(self, path, fingerprint: str):
        self.path, self.fingerprint = Path(path), fingerprint

    def load(self, max_epochs: int) -> dict | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file: never resume from it
            log.warning("checkpoint %s unreadable (%s): training from scratch", self.path, e)
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.info("checkpoint %s is for other params or data: training from scratch", self.path)
            return None
        if state["epoch"] > max_epochs:
            log.info("checkpoint %s is past model.epochs=%d: training from scratch", self.path, max_epochs)
            return None
        return state

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"fingerprint": self.fingerprint, **state}, tmp)
        os.replace(tmp, self.path)  # a kill during the write leaves the previous checkpoint intact


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
