"""Every path a stage reads or writes, in one place (``dvc.yaml`` repeats them as deps / outs)."""

from pathlib import Path

from sessionrec.models import COMPOSITE, KINDS

PARAMS = Path("params.yaml")
RAW = Path("data/raw")
MANIFEST = RAW / "manifest.json"
INTERIM = Path("data/interim")
EVENTS = INTERIM / "events.parquet"
SPLIT = Path("data/split")
GRAPHS = Path("data/graphs")
MODEL = Path("models/model.pt")
CHECKPOINTS = Path("checkpoints")  # the train stage's persistent output: what a killed run resumes from
CHECKPOINT = CHECKPOINTS / "train.pt"
METRICS = Path("metrics")
DATA_REPORT = METRICS / "data_report.json"
SPLIT_REPORT = METRICS / "split_report.json"
GRAPHS_REPORT = METRICS / "graphs_report.json"
TRAIN_LIVE = METRICS / "train"
VAL_METRICS = METRICS / "val.json"
TEST_METRICS = METRICS / "test.json"
PLOTS = Path("plots")
BENCHMARK_RUNS = METRICS / "benchmark"
BENCHMARK = METRICS / "benchmark.json"
BENCHMARK_MODELS = Path("models/benchmark")
HYBRID_RUNS = METRICS / "benchmark-hybrid"  # the hybrid's cells read BENCHMARK_MODELS, so they write elsewhere
HYBRID_MODELS = Path("models/benchmark-hybrid")
BENCHMARK_PIPELINE = Path("benchmarks/dvc.yaml")
TRAINING_PNG = PLOTS / "training.png"


def benchmark_run(name: str, seed: int, suffix: str) -> Path:
    """``metrics/benchmark/NAME-SEED.json`` (suffix ``json``) or ``models/benchmark/NAME-SEED.pt`` (``pt``); the
    hybrid's under ``*/benchmark-hybrid/``."""
    composite = KINDS[name] == COMPOSITE
    if suffix == "json":
        return (HYBRID_RUNS if composite else BENCHMARK_RUNS) / f"{name}-{seed}.json"
    return (HYBRID_MODELS if composite else BENCHMARK_MODELS) / f"{name}-{seed}.pt"


def hybrid_checkpoint(network: str) -> Path:
    """``checkpoints/hybrid-NETWORK.pt``: the train stage's hybrid resumes each of its networks on its own."""
    return CHECKPOINTS / f"hybrid-{network}.pt"


def graph_store(split: str) -> Path:
    return GRAPHS / f"{split}.lmdb"


def user_path(path: str | Path) -> Path:
    """A folder named in params.yaml (``data.local_dir``, ``data.splits_dir``). Absolute: as given. Relative: from
    the project folder. A queued or ``--temp`` ``dvc exp run`` works in a copy under the project's
    ``.dvc/tmp/exps/``, where a relative path such as ``../shared/data/...`` would point elsewhere; there a path that
    does not exist in the copy is read from the project folder itself, so the README's commands work in the queue."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    parts = Path.cwd().resolve().parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i]) / path
    return path
