"""Data-parallel training across processes and machines, with ``torchrun`` and ``torch.distributed`` (gloo on CPU,
NCCL on GPUs).

``python src/train.py`` (the train stage) with ``model.processes_per_node: P`` > 1 or ``model.nodes: M`` > 1 starts
itself again under ``torchrun`` (``relaunch``); under torchrun every process joins one process group
(``init_from_env``). Then, in the one training loop:

* every rank draws the same shuffled order of global batches (``model.batch_size`` examples) and reads only its own
  rows of each (``rows[rank::world]``), so no example is read twice and the global batch is the single-process one;
* the model is wrapped in ``DistributedDataParallel``, which averages the gradients; each rank's loss is scaled by its
  share of the global batch, so the average is the global batch's mean even when the last batch splits unevenly;
* validation, early stopping and the hybrid's weight search run alike on every rank (same weights, same data, same
  decision); only rank 0 writes the checkpoint, DVCLive and the stage's outputs.

With the full softmax and no dropout, P processes follow the single-process run up to float summation order
(``tests/test_distributed.py``); dropout masks and sampled negatives are drawn per rank, so those runs are equally
good but not the same numbers.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

RDZV_ENV = "SESSIONREC_RDZV_ENDPOINT"  # host:port of node 0, for model.nodes > 1


def world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def relaunch_command(processes_per_node: int, nodes: int, script: str) -> list[str] | None:
    """The ``torchrun`` command that runs ``script`` on ``processes_per_node`` x ``nodes`` processes, or None when
    one process is asked for or this process already runs under torchrun."""
    if processes_per_node * nodes == 1 or "TORCHELASTIC_RUN_ID" in os.environ or "WORLD_SIZE" in os.environ:
        return None
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes_per_node}"]
    if nodes == 1:
        return [*cmd, "--standalone", script]
    endpoint = os.environ.get(RDZV_ENV)
    if not endpoint:
        raise ValueError(f"model.nodes: {nodes} machines need ${RDZV_ENV}=HOST:PORT of the first one, the same on "
                         f"every machine (then run the train stage on each)")
    return [*cmd, f"--nnodes={nodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
            "--rdzv_id=sessionrec-train", script]


def init_from_env() -> None:
    """Join the process group torchrun describes in the environment (NCCL with one GPU per process where CUDA is
    present, else gloo); nothing outside torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def close() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` in ``DistributedDataParallel`` inside a process group (its weights broadcast from rank 0), else
    itself."""
    if world()[1] == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module)


def all_sum(values: list[float]) -> list[float]:
    """Each value summed over the ranks (itself outside a process group)."""
    if world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()
