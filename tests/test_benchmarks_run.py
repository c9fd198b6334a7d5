"""``python benchmarks/run.py`` at its smallest size: every figure runs and lands in the JSON with its reference and
ratio. No timing is asserted (timings belong to the benchmark, not to tests)."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_benchmark_runner_measures_every_figure(tmp_path):
    out = tmp_path / "benchmarks.json"
    r = subprocess.run([sys.executable, "benchmarks/run.py", "--smoke", "--output", str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| figure | measured | reference | ratio |" in r.stdout
    b = json.loads(out.read_text())
    assert b["size"] == "smoke" and b["machine"]["torch"]
    for key in ("filter_encode.over_scan", "build_graphs.over_original_500", "loader.spread.share_of_step",
                "scoring.share_of_ceiling", "train.gru4rec@200000.sampled_over_full",
                "train.gru4rec@200000.lazy_over_full",
                "evaluate.graph_with_embeddings_and_attention@200000.examples_per_minute",
                "weight_search.hybrid@200000.speedup"):
        assert b[key] > 0, key
    assert b["weight_search.hybrid@4000.curves_equal"] and b["weight_search.hybrid@200000.curves_equal"]
    assert b["build_graphs.same_bytes"] and b["build_graphs.sessions_per_second_2_threads"] > 0
    assert 0 < b["loader.contiguous.share_of_step"] < 1 and 0 < b["loader.spread.share_of_step"] < 1
    assert b["loader.spread.shards_per_batch"] > b["loader.contiguous.shards_per_batch"]
    assert not any(v for k, v in b.items() if k.endswith("torch_loaded"))  # the data stages start without torch
    for stage in ("download", "filter_encode", "split", "build_graphs", "train", "evaluate"):
        assert b[f"pipeline.{stage}.seconds"] > 0 and b[f"pipeline.{stage}.peak_mib"] > 0
    assert b["pipeline.data.rows_read"] > b["pipeline.data.rows_kept"] > 0 and b["pipeline.data.test_examples"] > 0


def test_the_gpu_benchmark_runs_the_pipelines_loop_on_the_cpu(tmp_path):
    """``benchmarks/speed/gpu.py`` (what ``benchmarks/gpu.sh`` runs where CUDA is present) times every cell through
    ``train_epoch`` with prefetching; ``--device cpu`` runs the same code here. Exit 1 only says the loop waited 10%
    or more (possible on a busy CPU); the figures must be there either way."""
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, "benchmarks/speed/gpu.py", "--device", "cpu", "--sessions", "60", "--items",
                        "800", "--batch-size", "32", "--output", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 3 * 3 * 2  # networks x (full, sampled, sampled + lazy_adam) x (fp32, bf16)
    assert all(row["examples_per_second"] > 0 and 0 < row["loader_work_share"] < 1 and 0 <= row["loader_share"] < 1
               for row in rows)
