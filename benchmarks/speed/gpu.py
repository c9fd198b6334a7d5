"""On a CUDA device: training examples per second and GPU utilisation of the hybrid's networks at a 200k-product
catalogue (full softmax, the sampled loss with Adam and with lazy_adam, fp32 and bf16 autocast), and the loader's share of a step (reading and
collating a batch on the CPU, pinning it and copying it to the GPU), which must stay under 10%. Run through
``bash benchmarks/gpu.sh``; exits 1 when a loader share is 10% or more."""

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

from sessionrec.models import build_model  # noqa: E402
from sessionrec.models.registry import model_config  # noqa: E402
from sessionrec.training.loop import TrainStep, make_optimizer  # noqa: E402
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


def epoch(store, targets, name: str, n_items: int, loss: str, optimizer: str, bf16: bool, batch_size: int,
          device) -> dict:
    """One timed epoch; ``targets``: every example's target (the sampled loss's popularity)."""
    torch.manual_seed(0)
    model = build_model(model_config(name, n_items, KNOBS)).to(device).train()
    step = TrainStep(model, make_loss(loss, n_items, targets, 2048, 0.5, 1.0))
    opt = make_optimizer(model, 1e-3, 1e-5, optimizer)
    load = 0.0
    samples: list = []
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with utilisation(samples):
        for idx in store.batch_order(batch_size, shuffle=True, seed=0, epoch=1):
            l0 = time.perf_counter()
            batch = store.batch(idx)
            batch = type(batch)(**{k: v.pin_memory() for k, v in vars(batch).items()}).to(device)
            load += time.perf_counter() - l0
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                out = step(batch)
            opt.zero_grad(set_to_none=True)
            out.backward()
            opt.step()
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"model": name, "loss": loss, "optimizer": optimizer, "bf16": bf16, "examples_per_second": round(len(store) / seconds),
            "loader_share": round(load / seconds, 3),
            "gpu_utilisation": round(sum(samples) / len(samples), 1) if samples else None,
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    device = torch.device("cuda")
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
    print(markdown_table(["model", "loss", "optimizer", "bf16", "examples / s", "loader share", "GPU utilisation %",
                          "peak GiB"],
                         [[r["model"], r["loss"], r["optimizer"], r["bf16"], r["examples_per_second"], f"{r['loader_share']:.1%}",
                           r["gpu_utilisation"], r["peak_gib"]] for r in rows]))
    if args.output:
        args.output.write_text(json.dumps({"device": torch.cuda.get_device_name(), "items": args.items,
                                           "batch_size": args.batch_size, "rows": rows}, indent=1) + "\n")
    worst = max(r["loader_share"] for r in rows)
    print(f"gpu: loader at most {worst:.1%} of a step (target under 10%)")
    return 0 if worst < 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
