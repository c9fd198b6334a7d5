"""DVC experiments the way the README tells users to run them: kill and resume, invalidation, a queue with a
failing experiment, and sharing through a remote."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import TINY, project_copy, sh
from sessionrec.tools.experiments import parse_exp_show
from sessionrec.training.checkpoint import CheckpointError, load_verified

# Epochs long enough to be killed in the middle of one, patience high enough that all of them run.
RESUME = {**TINY, "data": {"synthetic": {**TINY["data"]["synthetic"], "sessions_per_month": 4000}},
          "model": {**TINY["model"], "epochs": 8, "patience": 100}}


def read_outputs(proj):
    state = load_verified(proj / "models/model.pt")["state_dict"]
    curve = (proj / "metrics/train/plots/metrics/val/MRR@20.tsv").read_text()
    return json.loads((proj / "metrics/val.json").read_text()), state, curve


def checkpoint_epoch(path):
    try:
        return load_verified(path)["epoch"]
    except (FileNotFoundError, CheckpointError):
        return 0


def kill_train_stage_after(proj, env, ckpt, epoch: int) -> int:
    """Run ``dvc repro --force`` of the train stage, SIGKILL dvc and the training process once ``ckpt`` holds epoch
    ``epoch`` (in the middle of the next one, or later), and return the epoch the checkpoint holds after the kill."""
    proc = subprocess.Popen(["dvc", "repro", "--force", "--single-item", "train"], cwd=proj, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while checkpoint_epoch(ckpt) < epoch and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return checkpoint_epoch(ckpt)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_resumes_and_matches_uninterrupted_run(tmp_path):
    proj, env = project_copy(tmp_path, RESUME)
    sh(proj, env, "dvc", "repro")
    full_val, full_state, full_curve = read_outputs(proj)
    assert full_val["best_epoch"] >= 1 and len(full_curve.splitlines()) == 1 + 8

    ckpt = proj / "checkpoints/train.pt"
    ckpt.unlink()
    killed_at = kill_train_stage_after(proj, env, ckpt, 2)  # in the middle of epoch 3 or later
    assert 2 <= killed_at < 8, f"the kill came after epoch {killed_at}; the run must still be in progress"
    assert not (proj / "models/model.pt").exists()

    rerun = sh(proj, env, "dvc", "repro")
    assert f"resumed from checkpoints/train.pt after epoch {killed_at}" in rerun.stderr + rerun.stdout
    val, state, curve = read_outputs(proj)
    # exact equality: both runs are on this machine with the same threads, a promise the resume must keep bit for bit
    assert val == full_val
    assert curve == full_curve  # the DVCLive history is whole: replayed epochs, then the resumed ones
    assert state.keys() == full_state.keys()
    assert all(torch.equal(state[k], full_state[k]) for k in state)
    assert json.loads(sh(proj, env, "dvc", "status", "--json").stdout) == {}

    # A param that changes the model makes the checkpoint stale: it is ignored, not resumed from.
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["model"]["lr"] = 0.002
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    changed = sh(proj, env, "dvc", "repro")
    out = changed.stderr + changed.stdout
    assert "is for other params or data: training from scratch" in out and "resumed from" not in out


@pytest.mark.slow
def test_hybrid_killed_in_its_second_network_resumes_there_and_matches_uninterrupted_run(tmp_path):
    """The train stage's hybrid keeps one checkpoint per network, the finished refit included: killed while training
    its second network, the rerun takes the first one (trained and refitted) from its checkpoint and resumes the
    second after its last completed epoch."""
    proj, env = project_copy(tmp_path, {**RESUME, "model": {**RESUME["model"], "name": "hybrid", "epochs": 4,
                                                            "hybrid_nets": ["gru4rec", "srgnn"]}})
    sh(proj, env, "dvc", "repro")
    full_val, full_state, _ = read_outputs(proj)
    first, second = proj / "checkpoints/hybrid-gru4rec.pt", proj / "checkpoints/hybrid-srgnn.pt"
    assert not (proj / "checkpoints/train.pt").exists()

    second.unlink()  # the first network's checkpoint stays: finished, refit included
    killed_at = kill_train_stage_after(proj, env, second, 1)
    assert 1 <= killed_at < 4, f"the kill came after epoch {killed_at}; the run must still be in progress"
    assert len(load_verified(first)["refit_lrs"]) == full_val["best_epoch"]["gru4rec"]

    rerun = sh(proj, env, "dvc", "repro")
    log = rerun.stderr + rerun.stdout
    assert f"resumed from {first.relative_to(proj)} after epoch 4" in log
    assert f"refit on train + val taken from {first.relative_to(proj)}" in log
    assert f"resumed from {second.relative_to(proj)} after epoch {killed_at}" in log
    val, state, _ = read_outputs(proj)
    assert val == full_val and state.keys() == full_state.keys()  # bit for bit: one machine, as above
    assert all(torch.equal(state[k], full_state[k]) for k in state)


@pytest.mark.slow
def test_queue_runs_two_experiments_and_reports_the_failing_one_as_failed(tmp_path):
    proj, env = project_copy(tmp_path, TINY)
    sh(proj, env, "dvc", "repro")
    sh(proj, env, "git", "add", "-A")
    sh(proj, env, "git", "commit", "-qm", "baseline")
    sh(proj, env, "dvc", "exp", "run", "--queue", "-S", "model.lr=0.01,0.003")
    sh(proj, env, "dvc", "exp", "run", "--queue", "--name", "broken", "-S", "model.name=gru5rec")
    sh(proj, env, "dvc", "exp", "run", "--run-all", "--jobs", "2", check=False)  # exits 0 even when one fails

    status = sh(proj, env, "dvc", "queue", "status").stdout
    assert status.count("Success") == 2 and status.count("Failed") == 1, status
    failed_line = next(line for line in status.splitlines() if "Failed" in line)
    assert "broken" in failed_line
    log = sh(proj, env, "dvc", "queue", "logs", "broken", check=False)
    assert "model.name: unknown model 'gru5rec'" in log.stdout + log.stderr

    show = json.loads(sh(proj, env, "dvc", "exp", "show", "--json").stdout)
    rows = {r.name: r for r in parse_exp_show(show)}
    done = [r for r in rows.values() if r.state == "success"]
    assert sorted(r.params["model.lr"] for r in done) == [0.003, 0.01]
    assert done[0].val["MRR@20"] != done[1].val["MRR@20"] and all(r.test for r in done)  # each its own metrics
    broken = rows["broken"]
    assert broken.state == "failed" and broken.params["model.name"] == "gru5rec" and not broken.val

    picked = sh(proj, env, sys.executable, "src/exps.py", "best")
    assert picked.stdout.strip() == max(done, key=lambda r: r.val["MRR@20"]).name
    assert "1 failed not considered" in picked.stderr
    sh(proj, env, "dvc", "exp", "apply", picked.stdout.strip())
    assert yaml.safe_load((proj / "params.yaml").read_text())["model"]["lr"] == rows[picked.stdout.strip()].params["model.lr"]


@pytest.mark.slow
def test_push_to_local_remote_then_fresh_clone_pulls_a_clean_workspace(tmp_path):
    proj, env = project_copy(tmp_path, TINY)
    sh(proj, env, "dvc", "repro")
    remote = tmp_path / "remote"
    sh(proj, env, "dvc", "remote", "add", "-d", "shared", str(remote))
    sh(proj, env, "git", "add", "-A")
    sh(proj, env, "git", "commit", "-qm", "pipeline outputs and remote")
    sh(proj, env, "dvc", "push")

    clone = tmp_path / "clone"
    sh(tmp_path, env, "git", "clone", "-q", str(proj), str(clone))
    assert not (clone / "models/model.pt").exists()
    sh(clone, env, "dvc", "pull")
    assert (clone / "models/model.pt").read_bytes() == (proj / "models/model.pt").read_bytes()
    assert json.loads(sh(clone, env, "dvc", "status", "--json").stdout) == {}
    assert "Running stage" not in sh(clone, env, "dvc", "repro").stdout
