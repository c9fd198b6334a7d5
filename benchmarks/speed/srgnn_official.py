"""Our ``srgnn`` against the official SR-GNN PyTorch code (CRIPAC-DIG/SR-GNN), same examples, same CPU threads, side
by side in one process: training examples per second with and without each one's test pass.

Both train on the fixed REES46 head split of ``../shared/data/splits/rees46-oct-head`` (4,112 training and 510 test
examples, 1,799 products, every prefix of a session an example) with the official recipe: d = 100, one GNN step,
batch 100, Adam 1e-3 with L2 1e-5 (no learning-rate decay: the reference table's fair row). Epochs alternate, one of
the official code's ``train_test`` (its shuffled training pass, then its test pass at batch 100), one of ours
(``training.loop.train_epoch``, then ``training.loop.validate`` over the test examples: loss and every R@K / MRR@K /
NDCG@K at the evaluate stage's batch of 512). The first epoch of each is a warm-up, not counted. The official code
builds each batch's graphs inside its step (timed apart once more over one training pass); ours builds them once
(the ``build_graphs`` stage: graph blocks written to an LMDB store, timed here as a one-off and also shown spread
over the epochs run). Each side's test R@20 / MRR@20 after the last epoch is printed as a check that both trained
(the official code counts ties optimistically, ours by their expectation; the epochs here are few, so the figures
are not the reference table's).

The official code is not vendored (its repository has no licence file): clone it and give its folder.

    git clone https://github.com/CRIPAC-DIG/SR-GNN /path/SR-GNN
    python benchmarks/speed/srgnn_official.py --official /path/SR-GNN [--epochs 6] [--output FILE.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from sessionrec.graphs.build import build_blocks
from sessionrec.graphs.store import GraphStore, write_blocks
from sessionrec.models import build_model
from sessionrec.models.registry import model_config
from sessionrec.sources.splits import read_split
from sessionrec.training.loop import TrainConfig, make_optimizer, train_epoch, validate

sys.path.insert(0, str(Path(__file__).parent))
from versions import machine, markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPLIT = ROOT / ".." / "shared" / "data" / "splits" / "rees46-oct-head"
RECIPE = {"hiddenSize": 100, "batchSize": 100, "step": 1, "lr": 1e-3, "l2": 1e-5, "lr_dc": 1.0, "lr_dc_step": 3,
          "nonhybrid": False}


def examples(split_dir: Path, split: str) -> tuple[list, list]:
    """The reference's example file as the official code reads it: (input sequences, targets), items 1..N."""
    seqs, targets = [], []
    for line in (split_dir / f"{split}.tsv").read_text().splitlines():
        inputs, target = line.split("\t")
        seqs.append([int(i) for i in inputs.split()])
        targets.append(int(target))
    return seqs, targets


def official_modules(folder: Path):
    """``pytorch_code/model.py`` and ``utils.py`` of a checkout of the official repository, as they are."""
    code = folder / "pytorch_code"
    if not (code / "model.py").is_file() or not (code / "utils.py").is_file():
        raise SystemExit(f"--official {folder}: no pytorch_code/model.py and utils.py there; clone "
                         "https://github.com/CRIPAC-DIG/SR-GNN and give its folder")
    sys.path.insert(0, str(code))
    import model as official_model  # noqa: PLC0415 (the official files, found by the path above)
    import utils as official_utils  # noqa: PLC0415
    return official_model, official_utils


def our_store(split_dir: Path, split: str, path: Path) -> tuple[GraphStore, int, float]:
    """The split's sessions built into a graph store as the ``build_graphs`` stage builds them; seconds taken."""
    t0 = time.perf_counter()
    ev = read_split(split_dir, split)
    zeros = np.zeros(len(ev["item"]), np.int64)
    feats = {"item": ev["item"], "category": zeros, "sub_category": zeros, "element": zeros, "brand": zeros,
             "price": np.zeros(len(ev["item"]), np.float32), "ts": ev["ts"]}
    n = write_blocks(path, build_blocks(ev["session_index"], feats, "all_prefixes"), 4096)
    if n != ev["examples"]:
        raise SystemExit(f"{split_dir}/{split}.tsv: {ev['examples']} examples, but our graphs hold {n}")
    return GraphStore(path), n, time.perf_counter() - t0


@contextlib.contextmanager
def quiet():
    """Neither side's progress output (the official code prints losses, ours draws tqdm bars) nor the official code's
    warnings (``scheduler.step()`` before ``optimizer.step()``; a tensor made from a list of arrays)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def run(official: Path, split_dir: Path, epochs: int, seed: int) -> dict:
    om, ou = official_modules(official)
    train_x, test_x = examples(split_dir, "train"), examples(split_dir, "test")
    n_items = max(max(max(s) for s in train_x[0]), max(train_x[1])) + 1  # ids 1..N and the padding row 0
    with tempfile.TemporaryDirectory(prefix="srgnn-official-") as tmp:
        train_store, n_train, t_train_build = our_store(split_dir, "train", Path(tmp) / "train.lmdb")
        test_store, n_test, t_test_build = our_store(split_dir, "test", Path(tmp) / "test.lmdb")
        if (n_train, n_test) != (len(train_x[1]), len(test_x[1])):
            raise SystemExit("our stores and the official examples differ in size")
        torch.manual_seed(seed)
        np.random.seed(seed)
        theirs = om.SessionGraph(argparse.Namespace(**RECIPE), n_items)
        their_train, their_test = ou.Data(train_x, shuffle=True), ou.Data(test_x, shuffle=False)
        torch.manual_seed(seed)
        ours = build_model(model_config("srgnn", n_items, {"hidden_dim": 100, "num_iterations": 1,
                                                            "dropout_rate": 0.0}))
        cfg = TrainConfig(lr=1e-3, weight_decay=1e-5, batch_size=100, epochs=epochs, use_scheduler=False, patience=0,
                          seed=seed)
        opt = make_optimizer(ours, cfg.lr, cfg.weight_decay)
        cpu = torch.device("cpu")
        times = {"official": [], "ours_train": [], "ours_test": []}
        for epoch in range(epochs):
            with quiet():
                t0 = time.perf_counter()
                hit, mrr = om.train_test(theirs, their_train, their_test)
                times["official"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                train_epoch(ours, opt, train_store, cfg, epoch, cpu)
                t1 = time.perf_counter()
                with torch.no_grad():
                    val = validate(ours.eval(), test_store, cfg, cpu)
                times["ours_test"].append(time.perf_counter() - t1)
            times["ours_train"].append(t1 - t0)
            print(f"epoch {epoch}: official {times['official'][-1]:.2f} s (test R@20 {hit:.2f}); ours train "
                  f"{times['ours_train'][-1]:.2f} s + test {times['ours_test'][-1]:.2f} s (test R@20 "
                  f"{100 * val['R@20']:.2f})", flush=True)
        train_store.close()
        test_store.close()
    # the official code's training and test passes are one call; its share of test is timed apart on one more pass
    with quiet(), torch.no_grad():
        theirs.eval()
        t0 = time.perf_counter()
        for i in their_test.generate_batch(theirs.batch_size):
            om.forward(theirs, i, their_test)[1].topk(20)
        their_test_s = time.perf_counter() - t0
        t0 = time.perf_counter()  # and the graph building inside its training pass (its Data.get_slice)
        for i in their_train.generate_batch(theirs.batch_size):
            their_train.get_slice(i)
        their_build_s = time.perf_counter() - t0
    counted = slice(1, None)  # the first epoch warms up
    off = float(np.mean(times["official"][counted]))
    tr, te = float(np.mean(times["ours_train"][counted])), float(np.mean(times["ours_test"][counted]))
    build = t_train_build + t_test_build
    return {
        "train_examples": n_train, "test_examples": n_test, "products": n_items - 1, "epochs": epochs,
        "threads": torch.get_num_threads(),
        "parameters": {"official": sum(p.numel() for p in theirs.parameters()),
                       "ours": sum(p.numel() for p in ours.parameters())},
        "seconds_per_epoch": {"official_train_and_test": round(off, 3),
                              "official_test_forward": round(their_test_s, 3),
                              "ours_train": round(tr, 3), "ours_test": round(te, 3)},
        "ours_build_graphs_seconds": round(build, 3),
        "official_build_graphs_seconds_per_epoch": round(their_build_s, 3),
        "examples_per_second": {
            "official_incl_test": round(n_train / off), "ours_incl_test": round(n_train / (tr + te)),
            "official_train_only": round(n_train / max(off - their_test_s, 1e-9)),
            "ours_train_only": round(n_train / tr),
            "ours_incl_test_and_build": round(n_train * (epochs - 1) / ((tr + te) * (epochs - 1) + build))},
        "ratio_incl_test": round(off / (tr + te), 2),
        "ratio_incl_test_and_build": round(off * (epochs - 1) / ((tr + te) * (epochs - 1) + build), 2),
        "test_after_last_epoch": {"official_R@20": round(hit, 2), "official_MRR@20": round(mrr, 2),
                                  "ours_R@20": round(100 * val["R@20"], 2),
                                  "ours_MRR@20": round(100 * val["MRR@20"], 2)},
    }


def table(r: dict) -> str:
    """docs/speed.md's table of one run's JSON."""
    s, e = r["seconds_per_epoch"], r["examples_per_second"]
    t = r["test_after_last_epoch"]
    rows = [["seconds per epoch: training and test pass", s["official_train_and_test"],
             round(s["ours_train"] + s["ours_test"], 3), f"{r['ratio_incl_test']}x"],
            ["training examples/s, with the test pass", e["official_incl_test"], e["ours_incl_test"],
             f"{r['ratio_incl_test']}x"],
            ["training examples/s, training pass only", e["official_train_only"], e["ours_train_only"],
             f"{round(e['ours_train_only'] / e['official_train_only'], 2)}x"],
            [f"training examples/s, with the test pass and our graph building spread over {r['epochs'] - 1} epochs",
             e["official_incl_test"], e["ours_incl_test_and_build"], f"{r['ratio_incl_test_and_build']}x"],
            ["graph building, seconds", f"{r['official_build_graphs_seconds_per_epoch']} per epoch, inside each step",
             f"{r['ours_build_graphs_seconds']} once (train and test)", ""],
            [f"test R@20 / MRR@20 after {r['epochs']} epochs (a check that both train)",
             f"{t['official_R@20']} / {t['official_MRR@20']}", f"{t['ours_R@20']} / {t['ours_MRR@20']}", ""],
            ["parameters", r["parameters"]["official"], r["parameters"]["ours"], ""]]
    return markdown_table(["", "official SR-GNN code", "`srgnn` (ours)", "ours / official"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="a checkout of github.com/CRIPAC-DIG/SR-GNN")
    ap.add_argument("--split", type=Path, default=SPLIT, help="a fixed split folder (train.tsv, test.tsv, sessions)")
    ap.add_argument("--epochs", type=int, default=6, help="epochs of each, the first not counted (at least 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, help="also write the figures here as JSON")
    args = ap.parse_args()
    if args.epochs < 2:
        raise SystemExit("--epochs: at least 2 (the first is a warm-up)")
    if not (args.split / "train.tsv").is_file():
        raise SystemExit(f"--split {args.split}: no train.tsv there (see ../shared/data/splits/README.md)")
    r = run(args.official, args.split, args.epochs, args.seed)
    out = {"command": "python benchmarks/speed/srgnn_official.py " + " ".join(sys.argv[1:]), "machine": machine(), **r}
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(table(r))
    eps = r["examples_per_second"]
    print(f"srgnn vs official SR-GNN, {r['train_examples']:,} training examples, {r['threads']} threads: "
          f"{eps['ours_incl_test']:,} vs {eps['official_incl_test']:,} examples/s with each one's test pass "
          f"({r['ratio_incl_test']}x; {r['ratio_incl_test_and_build']}x counting our graph building over "
          f"{args.epochs - 1} epochs); training only {eps['ours_train_only']:,} vs {eps['official_train_only']:,}")


if __name__ == "__main__":
    main()
