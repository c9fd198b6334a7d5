"""Data-parallel training (``sessionrec.distributed``): the train stage on 2 CPU processes under torchrun (gloo) follows
the single-process run. With the full softmax and no dropout the only difference is the order of float sums (each
rank sums its half of a batch, then the gradients are averaged), so every logged value must agree to 1e-5."""

import json
import shutil
import sys

import pytest

from conftest import TINY, project_copy, sh
from sessionrec import paths
from sessionrec.distributed import relaunch_command

TOLERANCE = 1e-5  # relative, on every per-epoch loss and validation metric; the largest measured was 3.5e-8


def history(proj) -> list:
    """The per-epoch rows of the training run (the DVCLive TSVs as the checkpoint keeps them)."""
    out = json.loads((proj / "metrics/val.json").read_text())
    rows = {}
    for tsv in sorted((proj / "metrics/train/plots/metrics").rglob("*.tsv")):
        name = str(tsv.relative_to(proj / "metrics/train/plots/metrics"))[:-4]
        lines = tsv.read_text().splitlines()[1:]
        rows[name] = [float(line.split("\t")[-1]) for line in lines]
    return [out, rows]


@pytest.mark.slow
def test_two_processes_train_as_one(tmp_path):
    model = {**TINY["model"], "name": "gru4rec", "dropout_rate": 0.0, "epochs": 3, "refit": True,
             "batch_size": 101}  # odd: the last global batch splits unevenly, the per-rank loss shares must fix it
    proj, env = project_copy(tmp_path, {**TINY, "model": model})
    sh(proj, env, "dvc", "repro", "train")
    one = history(proj)
    assert len(one[1]["train/loss"]) == 3
    shutil.rmtree(proj / paths.CHECKPOINT.parent)  # no resuming from the single-process run
    shutil.rmtree(proj / "metrics/train")
    params = (proj / "params.yaml").read_text().replace("processes_per_node: 1", "processes_per_node: 2")
    (proj / "params.yaml").write_text(params)
    r = sh(proj, env, sys.executable, "src/train.py")
    assert "torch.distributed.run --nproc_per_node=2 --standalone" in r.stderr
    assert "resumed" not in r.stderr and r.stderr.count("INFO sessionrec.training.loop: epoch 1:") == 1  # rank 0 logs
    two = history(proj)
    assert one[0]["best_epoch"] == two[0]["best_epoch"]
    for key, v in one[0].items():
        assert two[0][key] == pytest.approx(v, rel=TOLERANCE), key
    assert set(one[1]) == set(two[1])
    for name, values in one[1].items():
        assert two[1][name] == pytest.approx(values, rel=TOLERANCE), name


def test_relaunch_only_when_more_than_one_process_and_not_already_under_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.delenv("SESSIONREC_RDZV_ENDPOINT", raising=False)
    assert relaunch_command(1, 1, "src/train.py") is None
    assert relaunch_command(2, 1, "src/train.py")[-2:] == ["--standalone", "src/train.py"]
    with pytest.raises(ValueError, match="SESSIONREC_RDZV_ENDPOINT"):
        relaunch_command(1, 2, "src/train.py")
    monkeypatch.setenv("SESSIONREC_RDZV_ENDPOINT", "node0:29400")
    assert "--rdzv_endpoint=node0:29400" in relaunch_command(4, 2, "src/train.py")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert relaunch_command(4, 2, "src/train.py") is None
