"""The runtime environment of a stage: seeds, CPU threads, device."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_THREADS = torch.get_num_threads()  # torch's own default (the physical cores), before any set_num_threads


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(num_threads: int) -> int:
    """``num_threads`` > 0 wins; else ``OMP_NUM_THREADS``; else the cores free right now (``free_cores``). Returns
    the count in use."""
    n = num_threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or free_cores()
    torch.set_num_threads(n)
    return torch.get_num_threads()


def free_cores(window: float = 0.3) -> int:
    """torch's default thread count (the physical cores) times the share of CPU time nobody used over ``window``
    seconds (``/proc/stat``), rounded, at least 1; the default itself where ``/proc/stat`` is missing.

    Why: on 2 cores beside another job training with 2 threads, 2 threads of ours oversubscribe the cores and
    OpenMP's barriers wait on each other: a GRU4Rec epoch took 64-76 s against 4.8 s with one thread; alone, 2
    threads were only 1.12x faster than one (``benchmarks/speed/threads.py``). On an idle machine this is the
    default count, as before."""
    cores = DEFAULT_THREADS

    def times():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # all, idle + iowait

    try:
        total0, idle0 = times()
        time.sleep(window)
        total1, idle1 = times()
    except (OSError, ValueError, IndexError):
        return cores
    idle = (idle1 - idle0) / max(total1 - total0, 1)
    return max(1, min(cores, round(cores * idle)))


def pick_device() -> torch.device:
    """The GPU of this process where CUDA is present (``LOCAL_RANK``'s under torchrun), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")
