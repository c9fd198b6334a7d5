"""End to end: a planted sequential pattern the GNN must learn and popularity cannot; the DVC pipeline itself;
clear command-line errors."""

import json
import shutil
import sys

import pytest

from conftest import N_ITEMS, NOV_HEAD, TINY, need, planted_store, project_copy, sh
from sessionrec.models import build_model
from sessionrec.training.loop import TrainConfig, fit, score_store

def test_gnn_learns_planted_pattern_popularity_cannot(tmp_path):
    train, events = planted_store(tmp_path / "train.lmdb", 400, 1)
    val, _ = planted_store(tmp_path / "val.lmdb", 60, 2)
    test, _ = planted_store(tmp_path / "test.lmdb", 60, 3)
    vocab = {"category": 2, "sub_category": 2, "element": 2, "brand": 2}
    cfg = TrainConfig(lr=0.01, weight_decay=0.0, batch_size=64, epochs=8, use_scheduler=False, patience=3, seed=0)
    results = {}
    for name in ("pop", "graph_with_embeddings_and_attentional_aggregation"):
        config = {"name": name, "n_items": N_ITEMS + 1, "vocab_sizes": vocab, "embedding_dim": 32,
                  "hidden_dim": 32, "num_iterations": 1, "dropout_rate": 0.0}
        state, epoch, _, _ = fit(config, train, val, cfg, train_events=events)
        model = build_model(config)
        model.load_state_dict(state)
        _, acc = score_store(model, test, 256, [1, 20], "expected", "cpu")
        results[name] = acc.result()
    gnn, pop = results["graph_with_embeddings_and_attentional_aggregation"], results["pop"]
    assert gnn["R@1"] > 0.9, gnn
    assert pop["R@20"] < 0.6 and pop["R@1"] < 0.1, pop
    assert gnn["MRR@20"] > pop["MRR@20"] + 0.5


@pytest.mark.slow
def test_dvc_pipeline_runs_is_cached_and_reproducible(tmp_path):
    proj, env = project_copy(tmp_path, TINY)
    sh(proj, env, "dvc", "repro")
    first = json.loads((proj / "metrics/test.json").read_text())
    assert {"R@20", "MRR@20", "NDCG@20", "coverage@20", "R@1", "MRR@5"} <= set(first)
    assert (proj / "metrics/train/plots/metrics/val/MRR@20.tsv").exists()
    report = json.loads((proj / "metrics/data_report.json").read_text())
    assert report["rows_read"] == sum(f["rows"] for f in json.loads((proj / "data/raw/manifest.json").read_text())["files"])
    status = sh(proj, env, "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}
    again = sh(proj, env, "dvc", "repro")
    assert "Running stage" not in again.stdout
    for out in ("data", "models", "metrics/test.json", "metrics/train"):
        shutil.rmtree(proj / out) if (proj / out).is_dir() else (proj / out).unlink()
    sh(proj, env, "dvc", "repro", "--force")
    assert json.loads((proj / "metrics/test.json").read_text()) == first


@pytest.mark.parametrize("overrides, message", [
    ({"model": {"name": "gru5rec"}}, "model.name: unknown model 'gru5rec'"),
    ({"model": {"lr": -1}}, "model.lr: -1.0 is out of range"),
    ({"model": {"lerning_rate": 0.1}}, "unknown parameter(s) model.lerning_rate; valid keys:"),
])
def test_stage_scripts_fail_with_one_clear_line(tmp_path, overrides, message):
    proj, env = project_copy(tmp_path, overrides)
    r = sh(proj, env, sys.executable, "src/download.py", check=False)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_headerless_file_fails_download_clearly(tmp_path):
    need(NOV_HEAD)
    proj, env = project_copy(tmp_path, {"data": {"source": "local", "local_dir": str(NOV_HEAD),
                                                 "start_month": "2019-11", "end_month": "2019-11"}})
    r = sh(proj, env, sys.executable, "src/download.py", check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "2019-Nov.csv: the first line is data, not a header" in r.stderr
