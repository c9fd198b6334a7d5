"""Checkpoints: the resumable training state of one run (``Checkpoint``), and the saved model that evaluate, the
benchmark and serving load (``save_checkpoint`` / ``load_model``). Plain tensors and Python values only, read with
``torch.load(weights_only=True)``: nothing is unpickled.

Every file is ``{"format": FORMAT, "sha256": ..., "payload": uint8 tensor}``, the payload being the content as
``torch.save`` writes it: a truncated, altered or foreign file is refused with a message naming it
(``CheckpointError``), never decoded into other weights. Files are written whole or not at all (``atomic``)."""

from __future__ import annotations

import hashlib
import io
import logging
import random
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from sessionrec import atomic, distributed
from sessionrec.models import build_model

log = logging.getLogger(__name__)
FORMAT = "sessionrec-checkpoint/2"


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted: unreadable, of another format, or failing its checksum."""


def canonical(obj):
    """``obj`` with every container rebuilt and every string interned, so the bytes ``torch.save`` writes depend on
    the content only. Pickle shares an object met twice by identity: the key ``"train/loss"`` of every history row
    is one object in a run that logged them all, but one object per row once read back from a file, so a resumed run
    would otherwise write another file (and another DVC hash) for the same state. Tensors are kept as they are."""
    if type(obj) is str:
        return sys.intern(obj)
    if type(obj) in (dict, OrderedDict):  # a state_dict is an OrderedDict with the modules' versions in _metadata
        out = type(obj)((canonical(k), canonical(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = canonical(obj._metadata)
        return out
    if type(obj) in (list, tuple):
        return type(obj)(canonical(v) for v in obj)
    return obj


def save_verified(path: Path, obj: dict) -> None:
    """``obj`` (tensors and plain values) at ``path`` with its format and checksum, whole or not at all; the same
    content gives the same bytes (``canonical``)."""
    inner = io.BytesIO()
    torch.save(canonical(obj), inner)
    payload = inner.getvalue()
    outer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, outer)
    with atomic.replacing(path) as tmp:  # written from memory: a full disk is a plain OSError naming the file
        tmp.write_bytes(outer.getvalue())


def load_verified(path: Path, map_location="cpu") -> dict:
    """What ``save_verified`` wrote at ``path``, after checking its format and checksum."""
    redo = "rerun the stage that writes it (e.g. `dvc repro --force train`)"
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises many kinds for a damaged zip)
        raise CheckpointError(f"{path}: unreadable as a checkpoint ({str(e).splitlines()[0][:160]}); the file is "
                              f"damaged or not sessionrec's: {redo}") from None
    found = outer.get("format") if isinstance(outer, dict) else type(outer).__name__
    if found != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file (format: {found!r}); written by another program or an "
                              f"older sessionrec: {redo}")
    payload = outer["payload"].numpy().tobytes()
    if hashlib.sha256(payload).hexdigest() != outer["sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch, the file was altered or damaged: {redo}")
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)


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
            state = load_verified(self.path)
        except CheckpointError as e:  # a truncated, altered or foreign file: never resume from it
            log.warning("%s: training from scratch", e)
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.info("checkpoint %s is for other params or data: training from scratch", self.path)
            return None
        if state["epoch"] > max_epochs:
            log.info("checkpoint %s is past model.epochs=%d: training from scratch", self.path, max_epochs)
            return None
        return state

    def save(self, state: dict) -> None:
        if distributed.is_main():  # every rank holds the same state; one writes it
            save_verified(self.path, {"fingerprint": self.fingerprint, **state})  # a kill keeps the previous one


def save_checkpoint(path, config: dict, state_dict: dict, extra: dict | None = None) -> None:
    """Plain tensors and Python values only, so ``torch.load(weights_only=True)`` can read it back."""
    save_verified(path, {"config": config, "state_dict": state_dict, **(extra or {})})


def load_model(path, device=None):
    """Model and checkpoint dict from ``path``; the one loader used by evaluate and serving."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found (run the train stage)")
    ckpt = load_verified(path, device or "cpu")
    model = build_model(ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt
