"""Real failures: a full disk, a kill at any moment, a tampered or foreign file. None leaves a half-written output, a
leaked temporary folder or a traceback as the message; a rerun gives what an uninterrupted run gives."""

import json
import os
import resource
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
import yaml

from conftest import TINY, project_copy, rees46_row, sh, write_csv
from sessionrec.graphs.store import GraphStore, StoreError, write_store
from sessionrec.training.checkpoint import (CheckpointError, load_model, load_verified, save_checkpoint,
                                            save_verified)


def temporaries(proj) -> list[str]:
    """Whatever a stage leaves behind while writing: ``.NAME.tmp`` (``sessionrec.atomic``), ``data/interim/.tmp``,
    LMDB lock files."""
    found = [p for p in proj.rglob("*") if ".dvc" not in p.parts and ".git" not in p.parts and
             (p.name.endswith((".tmp", "-lock")) or p.name == ".tmp")]
    return sorted(str(p.relative_to(proj)) for p in found)


def local_source(tmp_path, sessions: int) -> dict:
    rows = [rees46_row(i % 3000, "view", 1 + (7 * s + 3 * i) % 400, sess=f"s{s}", user=str(s))
            for s in range(sessions) for i in range(4)]
    src = tmp_path / "src"
    src.mkdir()
    write_csv(src / "2019-Oct.csv", rows)
    return {"data": {"source": "local", "local_dir": str(src), "start_month": "2019-10", "end_month": "2019-10"}}


def limited(size: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path):
    """A file size limit (RLIMIT_FSIZE: writes past it fail as on a full disk) in download, then in filter_encode:
    each stage exits with one ``error:`` line naming what it was writing, no output and no lock entry."""
    proj, env = project_copy(tmp_path, local_source(tmp_path, 4000))  # a 1.3 MB CSV
    r = subprocess.run(["dvc", "repro", "download"], cwd=proj, env=env, capture_output=True, text=True,
                       preexec_fn=limited(500_000))
    assert r.returncode != 0 and "Traceback" not in r.stderr + r.stdout
    line = next(ln for ln in (r.stderr + r.stdout).splitlines() if ln.startswith("error: "))
    assert "File too large while writing" in line and "2019-Oct.csv" in line, line
    assert not (proj / "data/raw").exists() and temporaries(proj) == []
    assert not (proj / "dvc.lock").exists()
    sh(proj, env, "dvc", "repro", "download")
    r = subprocess.run(["dvc", "repro", "filter_encode"], cwd=proj, env=env, capture_output=True, text=True,
                       preexec_fn=limited(200_000))
    assert r.returncode != 0 and "Traceback" not in r.stderr + r.stdout
    assert any(ln.startswith("error: ") and "File too large" in ln and "data/interim/.tmp" in ln
               for ln in (r.stderr + r.stdout).splitlines()), r.stderr[-2000:]
    assert not (proj / "data/interim").exists() or list((proj / "data/interim").iterdir()) == []
    assert temporaries(proj) == [] and "filter_encode" not in yaml.safe_load((proj / "dvc.lock").read_text())["stages"]


def stage_running(session: int, stage: str) -> bool:
    """Whether ``src/STAGE.py`` runs in the process session ``session`` (not another test's pipeline)."""
    return subprocess.run(["pgrep", "-s", str(session), "-f", f"src/{stage}.py"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_sigkill_in_any_stage_then_rerun_gives_the_uninterrupted_outputs(tmp_path):
    """``dvc repro`` killed (SIGKILL, the whole process group) in filter_encode, build_graphs, train and evaluate in
    turn, each time rerun: the final outputs are byte for byte those of an uninterrupted run, and no temporary file
    or folder is left (nor any in the system temp folder)."""
    params = {**TINY, "model": {**TINY["model"], "epochs": 4}}
    (tmp_path / "ref").mkdir()
    (tmp_path / "killed").mkdir()
    ref, env = project_copy(tmp_path / "ref", params)
    sh(ref, env, "dvc", "repro")
    proj, env = project_copy(tmp_path / "killed", params)
    tmpdir = env.get("TMPDIR", "/tmp")
    before = set(os.listdir(tmpdir))
    for stage, wait in (("filter_encode", 0.3), ("build_graphs", 0.3), ("train", 4.0), ("evaluate", 0.5)):
        p = subprocess.Popen(["dvc", "repro"], cwd=proj, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 300
        while not stage_running(p.pid, stage) and p.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert p.poll() is None, f"dvc repro ended before {stage} started"
        time.sleep(wait)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        locked = yaml.safe_load((proj / "dvc.lock").read_text())["stages"] if (proj / "dvc.lock").exists() else {}
        assert stage not in locked, f"{stage} had finished before the kill"
    sh(proj, env, "dvc", "repro")
    lock = lambda d: {s: {o["path"]: o.get("md5") for o in v.get("outs", [])}  # noqa: E731
                      for s, v in yaml.safe_load((d / "dvc.lock").read_text())["stages"].items()}
    assert lock(proj) == lock(ref)
    assert json.loads((proj / "metrics/test.json").read_text()) == json.loads((ref / "metrics/test.json").read_text())
    assert temporaries(proj) == []
    assert [n for n in set(os.listdir(tmpdir)) - before if n.startswith("sessionrec")] == []


def test_a_flipped_byte_truncated_or_foreign_store_is_refused_by_name(tmp_path):
    rng = np.random.default_rng(0)
    examples = [{"item": rng.integers(1, 50, 4), "category": np.ones(4, int), "sub_category": np.ones(4, int),
                 "element": np.ones(4, int), "brand": np.ones(4, int), "price": np.zeros(4, np.float32),
                 "alias": np.arange(4), "src": np.arange(3), "dst": np.arange(1, 4), "w_in": np.ones(3, np.float32),
                 "w_out": np.ones(3, np.float32), "target": 7, "session": i, "time": 0} for i in range(300)]
    good = tmp_path / "good.lmdb"
    write_store(good, examples, 100)
    assert len(GraphStore(good)) == 300
    data = good.read_bytes()
    shard = data.find(b'"node_ptr"')  # inside the first shard's value
    for name, content in [("flipped.lmdb", data[:shard + 600] + bytes([data[shard + 600] ^ 1]) + data[shard + 601:]),
                          ("truncated.lmdb", data[:len(data) // 2]), ("foreign.lmdb", b"SQLite format 3\0" * 500)]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(StoreError, match=str(tmp_path / name)):
            GraphStore(tmp_path / name)


def test_a_resumed_state_is_written_byte_for_byte_as_the_uninterrupted_one(tmp_path):
    """The same content gives the same checkpoint bytes, however its strings and containers came to be: a run that
    resumed from a file (each history row's keys read back as their own objects) writes what an uninterrupted run
    writes, so DVC sees the same ``checkpoints`` hash (pickle would otherwise share, or not, by object identity)."""
    def row(epoch):
        return {"train/loss": 1.0 / epoch, "lr": 0.001, "val/MRR@20": 0.1 * epoch}
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    save_verified(tmp_path / "after1.pt", {"epoch": 1, "history": [row(1)], "model": weights})
    resumed = load_verified(tmp_path / "after1.pt")
    save_verified(tmp_path / "resumed.pt", {**resumed, "epoch": 2, "history": resumed["history"] + [row(2)]})
    save_verified(tmp_path / "straight.pt", {"epoch": 2, "history": [row(1), row(2)], "model": weights})
    assert (tmp_path / "resumed.pt").read_bytes() == (tmp_path / "straight.pt").read_bytes()


def test_a_tampered_truncated_or_foreign_checkpoint_is_refused_by_name(tmp_path):
    from quality import config
    from sessionrec.training.loop import new_model

    model = new_model(config("gru4rec"), 0)
    good = tmp_path / "model.pt"
    save_checkpoint(good, config("gru4rec"), model.state_dict())
    loaded, _ = load_model(good)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    data = good.read_bytes()
    middle = len(data) // 2
    torch.save({"config": config("gru4rec"), "state_dict": model.state_dict()}, tmp_path / "plain.pt")
    for name, content, message in [
            ("flipped.pt", data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1:], "altered or damaged"),
            ("truncated.pt", data[:middle], "unreadable as a checkpoint"),
            ("foreign.pt", (tmp_path / "plain.pt").read_bytes(), "not a sessionrec-checkpoint/2 file")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=f"{tmp_path / name}: .*{message}"):
            load_model(tmp_path / name)
