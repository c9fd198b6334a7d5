"""The benchmark pipeline end to end on a tiny synthetic project: every model x seed, the hybrid built from the
networks' own runs (not trained again), the report, and a clear error for a missing run."""

import json
import re
import sys

import pytest
import yaml

from conftest import ROOT, TINY, project_copy, sh


@pytest.mark.slow
def test_benchmark_runs_every_cell_and_the_hybrid_reuses_the_networks_runs(tmp_path):
    overrides = {**TINY, "model": {**TINY["model"], "hybrid_nets": ["gru4rec"]},
                 "benchmark": {"models": ["pop", "stan", "gru4rec"], "seeds": [1, 2]}}
    proj, env = project_copy(tmp_path, overrides, benchmarks=True)
    r = sh(proj, env, "dvc", "repro", "benchmarks/dvc.yaml", check=False)
    assert r.returncode != 0 and "models/benchmark/srgnn-1.pt" in r.stdout + r.stderr  # a run it reads is missing
    pipeline = proj / "benchmarks/dvc.yaml"  # the hybrid's stage lists the runs it reads: here, gru4rec's only
    pipeline.write_text("".join(line for line in pipeline.read_text().splitlines(keepends=True)
                                if not ("models/benchmark/" in line and "gru4rec" not in line)))
    sh(proj, env, "git", "commit", "-qam", "the hybrid of gru4rec")
    r = sh(proj, env, "dvc", "repro", "benchmarks/dvc.yaml")
    assert "training its network" not in r.stdout + r.stderr  # the hybrid trained nothing itself

    summary = json.loads((proj / "metrics/benchmark.json").read_text())
    assert [m for m in summary if not m.startswith("_")] == ["pop", "stan", "gru4rec", "hybrid"]
    assert all(summary[m]["R@20"]["n"] == 2 for m in ("pop", "stan", "gru4rec", "hybrid"))
    assert summary["_setup"]["refit"] is False and summary["_setup"]["hybrid_nets"] == ["gru4rec"]
    for seed in (1, 2):
        gru = json.loads((proj / f"metrics/benchmark/gru4rec-{seed}.json").read_text())
        hyb = json.loads((proj / f"metrics/benchmark-hybrid/hybrid-{seed}.json").read_text())
        assert hyb["parts"] == {"gru4rec": gru["best_epoch"]}  # the very network of the gru4rec row
        assert hyb["train_seconds"] >= gru["train_seconds"]  # and its cost is counted
        assert abs(sum(hyb["weights"].values()) - 1) < 1e-9 and set(hyb["weights"]) == {"gru4rec", "stan",
                                                                                "repeat_last", "repeat_earlier"}
        # the hybrid's validation score is the best of its grid, which holds both of its parts alone
        assert hyb["val_MRR@20"] >= gru["val_MRR@20"] - 1e-9
    assert "| `hybrid` |" in sh(proj, env, sys.executable, "src/benchmark_report.py").stdout
    assert "Running stage" not in sh(proj, env, "dvc", "repro", "benchmarks/dvc.yaml").stdout  # nothing reran

    r = sh(proj, env, sys.executable, "src/benchmark.py", "hybrid", "7", check=False)
    assert r.returncode == 2 and "models/benchmark/gru4rec-7.pt" in r.stderr and "Traceback" not in r.stderr

    # a cell of other data (here: made to look so) is refused by name, never mixed into the table
    cell = proj / "metrics/benchmark/stan-2.json"
    other = json.loads(cell.read_text())
    other["inputs"]["data"] = "0" * 16
    cell.write_text(json.dumps(other))
    r = sh(proj, env, sys.executable, "src/benchmark_report.py", check=False)
    assert r.returncode == 2 and "metrics/benchmark/stan-2.json: made from other data" in r.stderr


@pytest.mark.slow
def test_train_stage_trains_the_hybrids_networks_then_chooses_its_weights(tmp_path):
    """``dvc repro`` with ``model.name: hybrid``: each network trained (its own best epoch), then the blend,
    refitted; every choice on the seeded sample of ``model.val_examples`` validation examples."""
    proj, env = project_copy(tmp_path, {**TINY, "model": {**TINY["model"], "name": "hybrid", "val_examples": 100,
                                                          "hybrid_nets": ["gru4rec", "srgnn"]}})
    r = sh(proj, env, "dvc", "repro")
    out = r.stderr + r.stdout
    sampled = re.findall(r"validation on a seeded sample of 100 of its (\d+) examples", out)
    assert len(sampled) == 3 and int(sampled[0]) > 100  # each network's epochs, then the weights
    # each network trained by the one loop, with its own resumable checkpoint, and none of them as the main model
    assert sorted(p.name for p in (proj / "checkpoints").iterdir()) == ["hybrid-gru4rec.pt", "hybrid-srgnn.pt"]
    val = json.loads((proj / "metrics/val.json").read_text())
    assert set(val["best_epoch"]) == {"gru4rec", "srgnn"} and all(1 <= e <= 2 for e in val["best_epoch"].values())
    test = json.loads((proj / "metrics/test.json").read_text())
    assert 0 <= test["MRR@20"] <= test["R@20"] <= 1 and test["examples"] > 0

def test_the_benchmark_hybrid_stage_depends_on_exactly_the_default_networks_runs():
    nets = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]["hybrid_nets"]
    stage = yaml.safe_load((ROOT / "benchmarks/dvc.yaml").read_text())["stages"]["benchmark_hybrid"]["do"]
    assert {d for d in stage["deps"] if d.startswith("models/")} == {f"models/benchmark/{n}-${{item}}.pt" for n in nets}
