"""Every speed and memory figure of the project in one run, each against its reference measured side by side, as one
table and ``metrics/benchmarks.json`` (a key per figure, ratios included).

    python benchmarks/run.py            # the quick size: a few minutes on 2 cores
    python benchmarks/run.py --full     # larger sizes, and the whole pipeline at full REES46 scale (hours)

Figures (each cell a fresh process; run it alone, the timings assume an otherwise idle machine):

* ``filter_encode``: wall time and peak memory on the real October head repeated to ``rows`` rows, against a bare
  DuckDB scan of the same file (the parse floor) and against the floor of any DuckDB design of the stage (parse every
  field, write the same share of rows typed and sorted by session and time: ``benchmarks/speed/filter_encode.py``);
* ``build_graphs``: sessions per second of building a split's graph store (vectorised, on one thread and on two),
  against the original design's 500 sessions/s (a quoted figure, not rerun);
* ``startup``: seconds of imports before the data stages do any work (torch is never loaded there);
* ``loader``: the share of a training step (default graph model, 4k products) spent reading and collating batches,
  from a store of 4,096-example shards and from one of 8-example shards (as many shards per batch as a full-size
  shuffled epoch touches);
* ``train``: training examples per second, full softmax and the sampled loss (dense Adam and ``lazy_adam``), at 4k
  and 200k products;
* ``evaluate``: test examples per minute over the full catalogue at 4k and 200k products;
* ``scoring``: the full-catalogue scoring matmul's GFLOP/s against this machine's large square matmul (the ceiling);
* ``weight_search``: the hybrid's weight search per validation session over its 286-point first stage, counting a few
  candidates per session against counting the whole catalogue, at 4k and 200k products (drawn parts, equal curves);
* ``srgnn_official`` (with ``--official-srgnn DIR``, a checkout of github.com/CRIPAC-DIG/SR-GNN): our ``srgnn``
  against the official SR-GNN PyTorch code on the same REES46 head split and CPU, training examples per second with
  each one's test pass (``benchmarks/speed/srgnn_official.py``);
* ``pipeline``: ``dvc repro`` stage by stage on a streamed synthetic REES46 (a small one by default; with ``--full``
  110M rows over two months and 200k products), each stage's wall time and peak memory (its processes' largest RSS).

The quick run is also the CI smoke test of this script (``tests/test_benchmarks_run.py``, at a smaller size still).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEED = ROOT / "benchmarks" / "speed"
sys.path.insert(0, str(SPEED))
from versions import machine, markdown_table, run_snippet  # noqa: E402

SIZES = {  # quick / full: what each figure runs on
    "smoke": {"fe_rows": 20_000, "graph_sessions": 5_000, "store_sessions": 200, "items": [4000, 200_000],
              "weight_sessions": 10,
              "pipeline": {"sessions_per_month": 2_000, "n_items": 2_000, "n_categories": 40, "n_brands": 100}},
    "quick": {"fe_rows": 300_000, "graph_sessions": 300_000, "store_sessions": 1500, "items": [4000, 200_000],
              "weight_sessions": 60,
              "pipeline": {"sessions_per_month": 15_000, "n_items": 5_000, "n_categories": 150, "n_brands": 300}},
    "full": {"fe_rows": 5_000_000, "graph_sessions": 1_000_000, "store_sessions": 6000, "items": [4000, 200_000],
             "weight_sessions": 200,
             "pipeline": {"sessions_per_month": 16_000_000, "n_items": 200_000, "n_categories": 1000,
                          "n_brands": 3000}},
}
# The pipeline run's params (README "Benchmarks"): two months, the streamed generator, every network one epoch with the
# sampled loss and lazy_adam (a 200k-product softmax is a matter of time, not memory), no refit; the rest as
# params.yaml.
PIPELINE = {"data": {"start_month": "2019-10", "end_month": "2019-11", "synthetic": {"stream": True}},
            "model": {"epochs": 1, "refit": False, "loss": "sampled", "optimizer": "lazy_adam"},
            "filter_encode": {"memory_limit": "8GB"}}
STAGES = ("download", "filter_encode", "split", "build_graphs", "train", "evaluate")


def speed_module(name: str):
    """``benchmarks/speed/NAME.py`` as a module (its helpers and snippets)."""
    spec = importlib.util.spec_from_file_location(f"speed_{name}", SPEED / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def filter_encode(size: dict, tmp: Path) -> dict:
    fe = speed_module("filter_encode")
    csv = tmp / "fe" / "2019-Oct.csv"
    csv.parent.mkdir()
    fe.make_input(csv, size["fe_rows"])
    scan = run_snippet(fe.SCAN, [csv, tmp / "scan"])
    now = run_snippet(fe.RUN, [csv, tmp / "fe-out"])
    floor = run_snippet(fe.FLOOR, [csv, tmp / "floor", now["rows_kept"] / size["fe_rows"]])
    return {"rows": size["fe_rows"], "seconds": round(now["seconds"], 2), "peak_mib": round(now["peak_mib"]),
            "scan_seconds": round(scan["seconds"], 2), "over_scan": round(now["seconds"] / scan["seconds"], 1),
            "floor_seconds": round(floor["seconds"], 2),
            "floor_over_scan": round(floor["seconds"] / scan["seconds"], 1),
            "over_floor": round(now["seconds"] / floor["seconds"], 1),
            "rows_per_second": round(size["fe_rows"] / now["seconds"])}


def build_graphs(size: dict, tmp: Path) -> dict:
    """On one thread and on two (``write_split_graphs``'s builder threads), the same store bytes both ways."""
    bg = speed_module("build_graphs")
    parquet = tmp / "train.parquet"
    bg.make_split(parquet, size["graph_sessions"])
    one = run_snippet(bg.RUN, [parquet, tmp / "graphs-1.lmdb"], threads=1)
    two = run_snippet(bg.RUN, [parquet, tmp / "graphs-2.lmdb"], threads=2)
    rate, rate2 = (size["graph_sessions"] / r["seconds"] for r in (one, two))
    return {"sessions": size["graph_sessions"], "sessions_per_second": round(rate), "peak_mib": round(one["peak_mib"]),
            "over_original_500": round(rate / 500, 1), "sessions_per_second_2_threads": round(rate2),
            "peak_mib_2_threads": round(two["peak_mib"]), "two_threads_over_one": round(rate2 / rate, 2),
            "same_bytes": (tmp / "graphs-1.lmdb").read_bytes() == (tmp / "graphs-2.lmdb").read_bytes()}


STARTUP = """
import importlib, json, sys, time
sys.path.insert(0, "src")
t0 = time.perf_counter()
importlib.import_module(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t0, "torch": "torch" in sys.modules}))
"""


def startup() -> dict:
    out = {}
    for stage in STAGES[:4]:
        r = run_snippet(STARTUP, [stage], cwd=ROOT)
        out[stage] = {"import_seconds": round(r["seconds"], 2), "torch_loaded": r["torch"]}
    return out


LOADER = """
import json, sys, time
sys.path.insert(0, {speed!r})
from pathlib import Path
import numpy as np, torch
from loader import timed_steps
from training_step import KNOBS, synthetic_store
from sessionrec.models import build_model
from sessionrec.models.registry import model_config
from sessionrec.training.loop import TrainStep, make_optimizer
from sessionrec.training.loss import FullSoftmax
store = synthetic_store(Path(sys.argv[1]), int(sys.argv[2]), 4000, shard_size=int(sys.argv[3]))
shards = np.mean([len(np.unique(np.searchsorted(store.starts, idx, side="right")))
                  for idx in store.batch_order(128, shuffle=True, seed=0, epoch=1)])
torch.manual_seed(0)
model = build_model(model_config("graph_with_embeddings_and_attention", 4000, KNOBS)).train()
step, opt = TrainStep(model, FullSoftmax()), make_optimizer(model, 1e-3, 1e-5)
for epoch in (0, 1):  # the first pass warms up; the second is measured
    load, rest = timed_steps(store, step, opt, store.batch_order(128, shuffle=True, seed=0, epoch=epoch))
print(json.dumps({{"load_seconds": load, "step_seconds": load + rest, "examples": len(store),
                  "shards_per_batch": round(float(shards), 1)}}))
"""


def loader(size: dict, tmp: Path) -> dict:
    """The loader's share of a step with the store's 4,096-example shards (a batch of a small split touches a few),
    and with 8-example shards, so that a batch touches about as many shards as a shuffled full-size epoch's (one per
    example: 33M examples in 8,161 shards)."""
    out = {}
    for key, shard_size in (("contiguous", 4096), ("spread", 8)):
        r = run_snippet(LOADER.format(speed=str(SPEED)),
                        [tmp / f"loader-{shard_size}.lmdb", size["store_sessions"] * 2, shard_size])
        out[key] = {"share_of_step": round(r["load_seconds"] / r["step_seconds"], 3),
                    "examples_per_second": round(r["examples"] / r["step_seconds"]),
                    "shard_size": shard_size, "shards_per_batch": r["shards_per_batch"]}
    return out


def train(size: dict, tmp: Path) -> dict:
    sl, ts = speed_module("sampled_loss"), speed_module("training_step")
    out = {}
    for n_items in size["items"]:
        store = tmp / f"train-{n_items}.lmdb"
        ts.synthetic_store(store, size["store_sessions"], n_items).close()
        for name in sl.MODELS:
            rate = {v: run_snippet(sl.SPEED.format(here=str(SPEED)),
                                   [store, name, n_items, sl.VARIANTS[v]["loss"], sl.VARIANTS[v]["optimizer"]])
                    ["examples_per_second"] for v in sl.TIMED}
            out[f"{name}@{n_items}"] = {"full_examples_per_second": rate["full"],
                                        "sampled_examples_per_second": rate["sampled"],
                                        "sampled_over_full": round(rate["sampled"] / rate["full"], 2),
                                        "lazy_examples_per_second": rate["lazy"],
                                        "lazy_over_full": round(rate["lazy"] / rate["full"], 2)}
    return out


def evaluate(size: dict, tmp: Path) -> dict:
    ev, ts = speed_module("evaluate"), speed_module("training_step")
    out = {}
    for n_items in size["items"]:
        store = tmp / f"test-{n_items}.lmdb"
        ts.synthetic_store(store, size["store_sessions"], n_items, seed=1).close()
        for name in ("gru4rec", "graph_with_embeddings_and_attention"):
            r = run_snippet(ev.RUN.format(here=str(SPEED)), [store, name, n_items, 512])
            out[f"{name}@{n_items}"] = {"examples_per_minute": r["examples_per_minute"],
                                        "peak_mib": round(r["peak_mib"])}
    return out


SCORING = """
import json, time, torch
from sessionrec.models import build_model
from sessionrec.models.registry import model_config
def rate(f, flops, n=5):
    f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return flops * n / (time.perf_counter() - t0) / 1e9
a = torch.randn(2048, 2048)
ceiling = rate(lambda: a @ a, 2 * 2048 ** 3)
N, B = 200_000, 256
model = build_model(model_config("srgnn", N, {"hidden_dim": 64, "num_iterations": 1, "dropout_rate": 0.0})).eval()
h, buf = torch.randn(B, 64), torch.empty(B, N)
with torch.no_grad():
    scoring = rate(lambda: model.score(h, out=buf), 2 * B * 64 * N)
print(json.dumps({"ceiling_gflops": ceiling, "scoring_gflops": scoring, "threads": torch.get_num_threads()}))
"""


def scoring() -> dict:
    r = run_snippet(SCORING, [])
    return {"ceiling_gflops": round(r["ceiling_gflops"], 1), "scoring_gflops": round(r["scoring_gflops"], 1),
            "share_of_ceiling": round(r["scoring_gflops"] / r["ceiling_gflops"], 2), "threads": r["threads"]}


WEIGHT_SEARCH = """
import json, sys
sys.path.insert(0, {speed!r})
from weight_search import measure
print(json.dumps({{str(n): measure(n, int(sys.argv[1])) for n in map(int, sys.argv[2:])}}))
"""


def weight_search(size: dict) -> dict:
    r = run_snippet(WEIGHT_SEARCH.format(speed=str(SPEED)), [size["weight_sessions"], *size["items"]])
    return {f"hybrid@{n}": {"candidates_ms_per_session": v["ms_per_session"]["candidates"],
                            "full_ms_per_session": v["ms_per_session"]["full"], "speedup": v["speedup"],
                            "undecided_share": v["undecided_share"], "curves_equal": v["curves_equal"],
                            "points": v["points"]} for n, v in r.items()}


SRGNN_OFFICIAL = """
import json, sys
from pathlib import Path
sys.path.insert(0, {speed!r})
from srgnn_official import SPLIT, run
print(json.dumps(run(Path(sys.argv[1]), SPLIT, 6, 0)))
"""


def srgnn_official(folder: Path) -> dict:
    r = run_snippet(SRGNN_OFFICIAL.format(speed=str(SPEED)), [folder.resolve()])
    return {"train_examples": r["train_examples"], "threads": r["threads"],
            "ours_examples_per_second": r["examples_per_second"]["ours_incl_test"],
            "official_examples_per_second": r["examples_per_second"]["official_incl_test"],
            "ratio": r["ratio_incl_test"], "ratio_incl_graph_building": r["ratio_incl_test_and_build"]}


MEASURED = """
import json, os, resource, subprocess, sys, time
def size(d):  # bytes under folder d (0 if absent)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs
               if os.path.exists(os.path.join(r, f)))
t0 = time.perf_counter()
with open(sys.argv[2], "w+") as err:  # the stage's log (and progress bars)
    p = subprocess.Popen(sys.argv[3:], stdout=subprocess.DEVNULL, stderr=err)
    tmp_peak = 0
    while p.poll() is None:  # the stage's temporary folder, once a second
        tmp_peak = max(tmp_peak, size(sys.argv[1]))
        time.sleep(1)
    err.seek(0)
    log = [ln.strip() for ln in err.read().splitlines() if ln.startswith(("INFO ", "error:"))]
print(json.dumps({"rc": p.returncode, "seconds": time.perf_counter() - t0, "tmp_peak_mib": tmp_peak / 2**20,
                  "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "log": log}))
"""


def pipeline(size: dict, tmp: Path, stages=STAGES, model: str | None = None, epoch_examples: int = 0,
             val_examples: int = 0, test_examples: int = 0) -> dict:
    """Every stage of ``dvc.yaml`` in a throwaway copy of the project with ``PIPELINE`` and the size's generator
    knobs (and ``model.name`` = ``model``, ``model.epoch_examples`` = ``epoch_examples``, ``model.val_examples`` =
    ``val_examples``, ``evaluate.test_examples`` = ``test_examples`` if given), one
    ``dvc repro --single-item`` each, timed, with the peak RSS of the stage's processes."""
    from sessionrec.tools.project import throwaway_project

    overrides = json.loads(json.dumps(PIPELINE))
    overrides["data"]["synthetic"].update(size["pipeline"])
    if model:
        overrides["model"]["name"] = model
    if epoch_examples:
        overrides["model"]["epoch_examples"] = epoch_examples
    if val_examples:
        overrides["model"]["val_examples"] = val_examples
    if test_examples:
        overrides.setdefault("evaluate", {})["test_examples"] = test_examples
    (tmp / "pipeline").mkdir()
    proj, env = throwaway_project(ROOT, tmp / "pipeline", overrides, link_cache=True)  # 14 GB of CSV is not copied
    out = {}
    for stage in stages:
        r = run_snippet(MEASURED, [proj / "data" / "interim" / ".tmp", tmp / f"{stage}.log", "dvc", "repro",
                                   "--single-item", stage], cwd=proj, env=env)
        out[stage] = {"seconds": round(r["seconds"], 1), "peak_mib": round(r["peak_mib"]), "log": r["log"]}
        if stage == "filter_encode":  # its work folder (staged Parquet, DuckDB's database and spill files)
            out[stage]["tmp_peak_mib"] = round(r["tmp_peak_mib"])
        print(f"pipeline {stage}: {out[stage]}", flush=True)
        if r["rc"]:  # e.g. out of memory: the figures so far are kept, the failure is one of them
            out[stage]["failed_exit_code"] = r["rc"]
            print(f"pipeline: `dvc repro --single-item {stage}` failed (exit {r['rc']}); stages after it not run",
                  flush=True)
            break
    data = {}
    stages = [st for st, r in out.items() if "failed_exit_code" not in r]  # the stages whose outputs exist
    if "filter_encode" in stages:
        report = json.loads((proj / "metrics" / "data_report.json").read_text())
        raw = sum(f.stat().st_size for f in (proj / "data" / "raw").rglob("*") if f.is_file())
        data.update(rows_read=report["rows_read"], rows_kept=report["rows_kept"], sessions=report["sessions"],
                    items=report["items"], raw_mib=round(raw / 2**20))
    if "build_graphs" in stages:
        graphs = json.loads((proj / "metrics" / "graphs_report.json").read_text())
        data.update(graph_examples={k: v["examples"] for k, v in graphs.items() if isinstance(v, dict)
                                    and "examples" in v})
    if "train" in stages:
        val = json.loads((proj / "metrics" / "val.json").read_text())
        data.update({"val_R@20": val["R@20"], "val_MRR@20": val["MRR@20"],
                     "train_examples_per_epoch": epoch_examples or data.get("graph_examples", {}).get("train"),
                     "val_examples": val_examples})  # 0: every one
    if "evaluate" in stages:
        test = json.loads((proj / "metrics" / "test.json").read_text())
        data.update({"test_examples": test["examples"], "test_R@20": test["R@20"], "test_MRR@20": test["MRR@20"],
                     **({"test_sampled_from": test["sampled_from"]} if "sampled_from" in test else {})})
    out["data"] = data
    return out


def nested(flat_results: dict) -> dict:
    """``flat``'s inverse for the figures (the keys hold no other dots)."""
    out: dict = {}
    for key, v in flat_results.items():
        if key in ("size", "command", "seconds", "machine"):
            continue
        *path, last = key.split(".")
        cur = out
        for part in path:
            cur = cur.setdefault(part, {})
        cur[last] = v
    return out


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def table(results: dict) -> str:
    """The summary: one row per figure, with its reference and the ratio."""
    rows = []
    if "filter_encode" in results:
        fe = results["filter_encode"]
        rows.append([f"filter_encode, {fe['rows']:,} rows", f"{fe['seconds']} s, {fe['peak_mib']:,} MiB peak",
                     f"DuckDB scan {fe['scan_seconds']} s; floor {fe['floor_seconds']} s ({fe['floor_over_scan']}x)",
                     f"{fe['over_scan']}x the scan, {fe['over_floor']}x the floor"])
    if "build_graphs" in results:
        bg = results["build_graphs"]
        rows.append([f"build_graphs, {bg['sessions']:,} sessions, 1 / 2 threads",
                     f"{bg['sessions_per_second']:,} / {bg['sessions_per_second_2_threads']:,} sessions/s"
                     + ("" if bg["same_bytes"] else " (STORES DIFFER)"), "original design 500 sessions/s (quoted)",
                     f"{bg['over_original_500']}x / {round(bg['sessions_per_second_2_threads'] / 500, 1)}x"])
    if "startup" in results:
        slowest = max(results["startup"].items(), key=lambda kv: kv[1]["import_seconds"])
        torch = any(s["torch_loaded"] for s in results["startup"].values())
        rows.append(["data stages' start-up (imports)", f"at most {slowest[1]['import_seconds']} s ({slowest[0]})",
                     "target 1 s, no torch", "torch loaded" if torch else "no torch"])
    if "loader" in results:
        ld = results["loader"]
        rows.append([f"loader, default graph model, batch 128 from {ld['contiguous']['shards_per_batch']:g} / "
                     f"{ld['spread']['shards_per_batch']:g} shards (a full-size epoch: 127)",
                     f"{ld['contiguous']['share_of_step']:.1%} / {ld['spread']['share_of_step']:.1%} of a step",
                     "target under 10%", ""])
    short = {"gru4rec": "GRU4Rec", "graph_with_embeddings_and_attention": "GNN+attention"}
    for n in sorted({int(k.split("@")[1]) for k in results.get("train", {})}):
        cells = {name: r for key, r in results["train"].items() for name, m in [key.split("@")] if int(m) == n}
        for what, key in (("sampled loss", "sampled"), ("sampled loss + lazy_adam", "lazy")):
            rows.append([f"train, {n:,} products: {what}, examples/s",
                         ", ".join(f"{short.get(k, k)} {r[f'{key}_examples_per_second']:,}" for k, r in cells.items()),
                         "full softmax: " + ", ".join(f"{r['full_examples_per_second']:,}" for r in cells.values()),
                         " / ".join(f"{r[f'{key}_over_full']}x" for r in cells.values())])
    for n in sorted({int(k.split("@")[1]) for k in results.get("evaluate", {})}):
        cells = {name: r for key, r in results["evaluate"].items() for name, m in [key.split("@")] if int(m) == n}
        worst = min(r["examples_per_minute"] for r in cells.values())
        rows.append([f"evaluate, {n:,} products: test examples/min",
                     ", ".join(f"{short.get(k, k)} {r['examples_per_minute']:,}" for k, r in cells.items()),
                     "target 100,000" if n >= 200_000 else "",
                     f"{worst / 100_000:.2f}x the target" if n >= 200_000 else ""])
    if "scoring" in results:
        sc = results["scoring"]
        rows.append([f"scoring matmul, 200k products ({sc['threads']} threads)", f"{sc['scoring_gflops']} GFLOP/s",
                     f"2048² matmul {sc['ceiling_gflops']} GFLOP/s", f"{sc['share_of_ceiling']:.0%} of the ceiling"])
    for key, r in results.get("weight_search", {}).items():
        rows.append([f"hybrid weight search, {int(key.split('@')[1]):,} products, {r['points']} points: ms per "
                     "validation session", f"{r['candidates_ms_per_session']:,} (candidates"
                     + (", equal curve)" if r["curves_equal"] else ", CURVE DIFFERS)"),
                     f"whole catalogue {r['full_ms_per_session']:,}", f"{r['speedup']}x"])
    if "srgnn_official" in results:
        so = results["srgnn_official"]
        rows.append([f"train, `srgnn`, REES46 head split ({so['train_examples']:,} examples, {so['threads']} threads): "
                     "examples/s with the test pass", f"{so['ours_examples_per_second']:,}",
                     f"official SR-GNN code {so['official_examples_per_second']:,}; target 2x",
                     f"{so['ratio']}x"])
    data = results.get("pipeline", {}).get("data", {})
    n, of = data.get("train_examples_per_epoch"), data.get("graph_examples", {}).get("train")
    v, of_val = data.get("val_examples"), data.get("graph_examples", {}).get("val")
    notes = ([f"one epoch of {n:,} of the {of:,} examples"] if n and of and n < of else []) + \
        ([f"chosen on {v:,} of the {of_val:,} validation examples"] if v and of_val and v < of_val else [])
    capped = f" ({'; '.join(notes)})" if notes else ""
    t, of_test = data.get("test_examples"), data.get("test_sampled_from")
    tested = f" (on {t:,} of the {of_test:,} test examples)" if t and of_test else ""
    for stage, r in results.get("pipeline", {}).items():
        if stage != "data":
            disk = f", {r['tmp_peak_mib']:,} MiB temp disk" if "tmp_peak_mib" in r else ""
            what = capped if stage == "train" else tested if stage == "evaluate" else ""
            rows.append([f"pipeline {stage}{what}", f"{r['seconds']} s, {r['peak_mib']:,} MiB peak{disk}",
                         "target: peak under 16 GiB", f"{r['peak_mib'] / 16384:.2f}x the cap"])
    return markdown_table(["figure", "measured", "reference", "ratio"], rows)


def write_readme(size_name: str, text: str, out: dict) -> None:
    """README.md's block for this size: the table and the line saying how, where and at which commit it was made."""
    readme = ROOT / "README.md"
    start, end = f"<!-- benchmarks:{size_name} -->", f"<!-- /benchmarks:{size_name} -->"
    body = readme.read_text()
    if start not in body or end not in body:
        raise SystemExit(f"README.md has no {start} ... {end} block to write")
    m = out["machine"]
    how = (f"`{out['command']}` at commit `{m['commit']}`; {m['cores']}-core {m['cpu']}, torch {m['torch']}; "
           f"{out['seconds'] // 60} min {out['seconds'] % 60} s.")
    head, rest = body.split(start, 1)
    readme.write_text(f"{head}{start}\n{text}\n\n{how}\n{end}{rest.split(end, 1)[1]}")


def command_line(argv: list[str]) -> str:
    """How the figures were made: this script's flags, less where they were written (``--output``, ``--readme``)."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg == "--readme":
            skip = False
            continue
        if arg == "--output":
            skip = True
            continue
        if not arg.startswith("--output="):
            kept.append(arg)
    return " ".join(["python", "benchmarks/run.py", *kept])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_true", help="larger sizes and the full-scale pipeline (hours)")
    group.add_argument("--smoke", action="store_true", help="the smallest sizes: checks that every figure runs")
    ap.add_argument("--output", type=Path, default=ROOT / "metrics" / "benchmarks.json")
    ap.add_argument("--skip", nargs="*", default=[], help="figures to leave out, e.g. pipeline")
    ap.add_argument("--sessions-per-month", type=int, help="the pipeline's size instead of the size's own "
                    "(data.synthetic.sessions_per_month; about 3.4 rows a session)")
    ap.add_argument("--readme", action="store_true",
                    help="also write the table into README.md between its <!-- benchmarks:SIZE --> markers")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES,
                    help="the pipeline's stages to run, in order (each needs the ones before it)")
    ap.add_argument("--model", help="the pipeline's model.name instead of params.yaml's (e.g. one network instead of "
                    "the hybrid)")
    ap.add_argument("--epoch-examples", type=int, default=0, help="the pipeline's model.epoch_examples: train one "
                    "epoch of that many examples (a full-scale epoch is hours on 2 cores)")
    ap.add_argument("--val-examples", type=int, default=0, help="the pipeline's model.val_examples: make every "
                    "choice on validation (epochs, the hybrid's weights) on a seeded sample of that many examples")
    ap.add_argument("--test-examples", type=int, default=0, help="the pipeline's evaluate.test_examples: score a "
                    "seeded sample of that many test examples (the hybrid scores about 13k a minute at full size)")
    ap.add_argument("--official-srgnn", type=Path, metavar="DIR", help="a checkout of "
                    "github.com/CRIPAC-DIG/SR-GNN: also time our srgnn against it (figure srgnn_official)")
    ap.add_argument("--render", type=Path, help="no measuring: print (and with --readme write) the table of an "
                    "earlier run's JSON")
    args = ap.parse_args()
    if args.render:
        out = json.loads(args.render.read_text())
        results = nested(out)
        print(table(results))
        if args.readme:
            write_readme(out["size"], table({k: v for k, v in results.items() if out["size"] == "full"
                                             or k != "pipeline"}), out)
        return 0
    size_name = "full" if args.full else "smoke" if args.smoke else "quick"
    size = SIZES[size_name]
    if args.sessions_per_month:
        size = {**size, "pipeline": {**size["pipeline"], "sessions_per_month": args.sessions_per_month}}
    results, t0 = {}, time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="benchmarks-") as tmp:
        tmp = Path(tmp)
        for name, fn in (("filter_encode", lambda: filter_encode(size, tmp)),
                         ("build_graphs", lambda: build_graphs(size, tmp)), ("startup", startup),
                         ("loader", lambda: loader(size, tmp)), ("train", lambda: train(size, tmp)),
                         ("evaluate", lambda: evaluate(size, tmp)), ("scoring", scoring),
                         ("weight_search", lambda: weight_search(size)),
                         ("srgnn_official", lambda: srgnn_official(args.official_srgnn)),
                         ("pipeline", lambda: pipeline(size, tmp, args.stages, args.model,
                                                               args.epoch_examples, args.val_examples,
                                                               args.test_examples))):
            if name in args.skip:
                continue
            if name == "srgnn_official" and not args.official_srgnn:
                print("srgnn_official: not run (give --official-srgnn DIR, a checkout of "
                      "github.com/CRIPAC-DIG/SR-GNN)", flush=True)
                continue
            print(f"{name} ...", flush=True)
            results[name] = fn()
            print(f"{name}: {results[name]}", flush=True)
    text = table(results)
    print(text)
    out = {"size": size_name, "command": command_line(sys.argv[1:]),
           "seconds": round(time.perf_counter() - t0), "machine": machine(), **flat(results)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    if args.readme:  # the quick block leaves out its small pipeline (the full block is the pipeline at scale)
        shown = {k: v for k, v in results.items() if size_name == "full" or k != "pipeline"}
        write_readme(size_name, table(shown), out)
    print(f"benchmarks ({size_name}): {len(out) - 4} figures in {out['seconds']} s -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
