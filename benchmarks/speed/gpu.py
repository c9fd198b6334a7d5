"""On a CUDA device: training examples per second and GPU utilisation of the hybrid's networks at a 200k-product
catalogue (full softmax, the sampled loss with Adam and with lazy_adam, fp32 and bf16 autocast), through the
pipeline's own training loop (``training.loop.train_epoch``: the next batches read, collated and pinned on a
background thread while the GPU trains), and the loader's share of a step: the time the loop waited for a batch
(must stay under 10%), beside the loader's own work on its thread (reading, collating, pinning). Run through
``bash benchmarks/gpu.sh``; exits 1 when the loop waited 10% of an epoch or more. ``--device cpu`` runs the same on
the CPU (the smoke test, ``tests/test_benchmarks_run.py``; no utilisation, no pinning)."""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampled_loss import TIMED, VARIANTS  # noqa: E402
from training_step import KNOBS, synthetic_store  # noqa: E402
from versions import markdown_table  # noqa: E402

from sessionrec.graphs.batch import Batch  # noqa: E402
from sessionrec.models import build_model  # noqa: E402
from sessionrec.models.registry import model_config  # noqa: E402
from sessionrec.training import loop  # noqa: E402
from sessionrec.training.loop import TrainConfig, TrainStep, make_optimizer, train_epoch  # noqa: E402
from sessionrec.training.loss import make_loss  # noqa: E402

NETS = ("gru4rec", "srgnn", "graph_with_embeddings_and_attention")


@contextlib.contextmanager
def utilisation(samples: list):
    """``nvidia-smi``'s GPU utilisation every 0.2 s while the block runs (nothing where nvidia-smi is missing)."""
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout.split()
                samples.append(float(out[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return
            stop.wait(0.2)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


@contextlib.contextmanager
def loader_clock(store):
    """Seconds the loader worked (``store.batch`` and ``Batch.pinned``, on the prefetch thread) and seconds the
    training loop waited for its next batch (``training.loop.prefetched``'s items), while the block runs."""
    clock = {"work": 0.0, "waited": 0.0}
    batch, pinned, prefetched = store.batch, Batch.pinned, loop.prefetched

    def timed(fn):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            clock["work"] += time.perf_counter() - t0
            return out
        return call

    def waited(items, depth: int = 2):
        it = prefetched(items, depth)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                clock["waited"] += time.perf_counter() - t0
            yield item

    store.batch, Batch.pinned, loop.prefetched = timed(batch), timed(pinned), waited
    try:
        yield clock
    finally:
        del store.batch
        Batch.pinned, loop.prefetched = pinned, prefetched


def epoch(store, targets, name: str, n_items: int, loss: str, optimizer: str, bf16: bool, batch_size: int,
          device) -> dict:
    """One timed epoch of ``train_epoch`` with prefetching; ``targets``: every example's target (the sampled loss's
    popularity)."""
    torch.manual_seed(0)
    model = build_model(model_config(name, n_items, KNOBS)).to(device)
    step = TrainStep(model, make_loss(loss, n_items, targets, 2048, 0.5, 1.0))
    opt = make_optimizer(model, 1e-3, 1e-5, optimizer)
    cfg = TrainConfig(lr=1e-3, weight_decay=1e-5, batch_size=batch_size, epochs=1, use_scheduler=False, patience=1,
                      seed=0, loss=loss, optimizer=optimizer, precision="bf16" if bf16 else "fp32")
    cuda = device.type == "cuda"
    samples: list = []
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with utilisation(samples) if cuda else contextlib.nullcontext(), loader_clock(store) as clock:
        train_epoch(model, opt, store, cfg, 1, device, step=step, prefetch=True)
        if cuda:
            torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"model": name, "loss": loss, "optimizer": optimizer, "bf16": bf16,
            "examples_per_second": round(len(store) / seconds), "loader_share": round(clock["waited"] / seconds, 3),
            "loader_work_share": round(clock["work"] / seconds, 3),
            "gpu_utilisation": round(sum(samples) / len(samples), 1) if samples else None,
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if cuda else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run of the same code")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    device = torch.device(args.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        store = synthetic_store(Path(tmp) / "train.lmdb", args.sessions, args.items)
        targets = torch.cat([b.target for b in store.iter_batches(4096)]).numpy()  # read once for every cell
        for name in NETS:
            for loss, optimizer in ((VARIANTS[v]["loss"], VARIANTS[v]["optimizer"]) for v in TIMED):
                for bf16 in (False, True):
                    rows.append(epoch(store, targets, name, args.items, loss, optimizer, bf16, args.batch_size,
                                      device))
                    print(json.dumps(rows[-1]), flush=True)
    print(markdown_table(["model", "loss", "optimizer", "bf16", "examples / s", "loop waited", "loader work",
                          "GPU utilisation %", "peak GiB"],
                         [[r["model"], r["loss"], r["optimizer"], r["bf16"], r["examples_per_second"],
                           f"{r['loader_share']:.1%}", f"{r['loader_work_share']:.1%}", r["gpu_utilisation"],
                           r["peak_gib"]] for r in rows]))
    if args.output:
        name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
        args.output.write_text(json.dumps({"device": name, "items": args.items, "batch_size": args.batch_size,
                                           "rows": rows}, indent=1) + "\n")
    worst = max(r["loader_share"] for r in rows)
    print(f"gpu: the loop waited for batches at most {worst:.1%} of an epoch (target under 10%)")
    return 0 if worst < 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
