"""Stage ``benchmark_report``: every ``metrics/benchmark/MODEL-SEED.json`` (and the hybrid's) -> mean and standard
deviation over seeds per model (``metrics/benchmark.json``), a comparison chart (``plots/benchmark.png``,
``plots/benchmark.csv``), and the Markdown table (printed; ``--summary FILE`` prints a saved summary's, e.g. one of
``benchmarks/results/``). ``python src/render_docs.py`` writes the tables of docs/results.md from the summaries."""

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from sessionrec import paths, provenance
from sessionrec.report import aggregate, markdown_table, plot_benchmark, write_csv
from sessionrec.cli import run, write_json
from sessionrec.models import COMPOSITE, names
from sessionrec.params import load_params


def check_inputs(path: Path, got: dict | None, want: dict) -> None:
    """A cell made from other data or params than the working folder's is refused, by name: never mixed in."""
    if got is None:
        raise ValueError(f"{path}: records no inputs (made by an older sessionrec); rerun it: "
                         f"`dvc repro --force benchmarks/dvc.yaml`")
    differ = [k for k in want if got.get(k) != want[k]]
    if differ:
        raise ValueError(f"{path}: made from other {' and '.join(differ)} than the working folder's "
                         f"({', '.join(f'{k} {got.get(k)} != {want[k]}' for k in differ)}); rerun it: "
                         f"`dvc repro benchmarks/dvc.yaml`")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--summary", help="render this saved metrics/benchmark.json (e.g. benchmarks/results/*.json) "
                                      "instead of aggregating the runs")
    args = ap.parse_args()
    if args.summary:
        print(markdown_table(json.loads(Path(args.summary).read_text())))
        return
    params = load_params(paths.PARAMS)
    bp = params.benchmark
    runs = []
    want = provenance.inputs(params)
    for model in [*bp.models, *names(COMPOSITE)]:
        for seed in bp.seeds:
            path = paths.benchmark_run(model, seed, "json")
            if not path.exists():
                raise FileNotFoundError(f"{path}: missing (run `dvc repro benchmarks/dvc.yaml`)")
            cell = json.loads(path.read_text())
            check_inputs(path, cell.get("inputs"), want)
            runs.append(cell)
    summary = aggregate(runs, params.evaluate.top_k)
    summary["_setup"] = {"data": params.data.source, "splits_dir": params.data.splits_dir,
                         "seeds": list(bp.seeds), "refit": bp.refit,
                         "hybrid_nets": list(params.model.hybrid_nets), "protocol": params.protocol,
                         "model": {k: v for k, v in dataclasses.asdict(params.model).items()
                                   if k not in ("name", "seed")}}
    write_json(paths.BENCHMARK, summary)
    write_csv(summary, paths.PLOTS / "benchmark.csv")
    plot_benchmark(summary, paths.PLOTS / "benchmark.png")
    print(markdown_table(summary))
    best = max((m for m in summary if not m.startswith("_")), key=lambda m: summary[m]["MRR@20"]["mean"])
    logging.info("benchmark_report: %d models x %d seeds; best test MRR@20: %s (%.4f)", len(bp.models) + 1,
                 len(bp.seeds), best, summary[best]["MRR@20"]["mean"])


if __name__ == "__main__":
    run(main)
