"""The hybrid's weight search at 4k and 200k products: its candidate count (``training.blend.batch_curve``) against
the full-catalogue count it replaces, side by side on the same parts: the 286 points of the search's first stage
(three networks and STAN on the simplex grid of step 0.1) and the 66 of its second (the repeat weights around the mix
chosen at 126k products): milliseconds per validation session, the share of (session, point) pairs the candidates
leave to the full count, and whether the two curves are equal. ``--margins``: the bound's margin
(``training.blend.MARGIN``), e.g. ``1e-10 1e-12`` for the former and the present one side by side.

    python benchmarks/speed/weight_search.py [--items 4000 200000] [--sessions 60] [--stages 1 2] [--margins M ..]
                                             [--output F.json]
    python benchmarks/speed/weight_search.py --trained [--output F.json]   # this project's hybrid (models/model.pt)

The parts are drawn, not trained, shaped like a trained hybrid's: three networks' softmax over logits that share a
popularity prior and a per-session component, the target lifted by a random margin so that its rank runs from 1 to
the thousands; STAN's scores on a few hundred items (the target among them half the time); the repeat indicators of
a 5-click session that holds the target one time in five. Rows come in the batches the search reads
(``scoring.chunk_rows``: 10 sessions at 200k products). Making the parts is not timed: it is the networks' and STAN's
scoring, the same for both counts (and once per batch for every grid point in both); ``benchmarks/speed/evaluate.py
--models hybrid --weight-search`` times the whole first stage, parts included. ``--trained`` times the two on
the project's own hybrid and validation store instead, parts included (``training.blend.validation_curve``, after
``dvc repro``). Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from sessionrec.models.hybrid import Hybrid  # noqa: E402
from sessionrec.scoring import chunk_rows  # noqa: E402
from sessionrec.training import blend  # noqa: E402
from sessionrec.training.blend import batch_curve, per_part_for, repeat_grid, simplex_grid  # noqa: E402

NETS = 3


def draw_parts(gen: torch.Generator, rows: int, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(parts (NETS + 3, rows, N) float64, target (rows,)) as ``Hybrid.parts`` lays them out."""
    target = torch.randint(1, n_items, (rows,), generator=gen)
    prior = -torch.log(torch.arange(1, n_items + 1, dtype=torch.float64)) * 0.8  # Zipf popularity
    prior = prior[torch.randperm(n_items, generator=gen)]
    shared = torch.randn(rows, n_items, generator=gen, dtype=torch.float64) * 1.5
    lift = torch.rand(rows, generator=gen, dtype=torch.float64) * 14
    probs = []
    for _ in range(NETS):
        z = prior + shared + torch.randn(rows, n_items, generator=gen, dtype=torch.float64)
        z[torch.arange(rows), target] += lift + torch.randn(rows, generator=gen, dtype=torch.float64)
        z[:, 0] = -torch.inf
        probs.append(torch.softmax(z, dim=-1))
    stan = torch.zeros(rows, n_items, dtype=torch.float64)
    for r in range(rows):
        items = torch.randint(1, n_items, (300,), generator=gen)
        stan[r, items] = torch.rand(300, generator=gen, dtype=torch.float64) ** 3
        if torch.rand(1, generator=gen) < 0.5:
            stan[r, target[r]] = torch.rand(1, generator=gen, dtype=torch.float64)
    stan = stan / stan.amax(dim=-1, keepdim=True).clamp_min(1e-12)
    clicked = torch.zeros(rows, n_items, dtype=torch.float64)
    last = torch.zeros_like(clicked)
    for r in range(rows):
        items = torch.randint(1, n_items, (5,), generator=gen)
        if torch.rand(1, generator=gen) < 0.2:
            items[int(torch.randint(0, 4, (1,), generator=gen))] = target[r]
        clicked[r, items] = 1.0
        last[r, items[-1]] = 1.0
    return torch.stack([*probs, stan, last, clicked - last]), target


MIX = (0.1, 0.5, 0.0, 0.4)  # the networks' and STAN's mix the first stage chose at 126k products (docs/scale.md)


def stage_grid(stage: int) -> list:
    """The points of the search's first stage (the networks' and STAN's simplex grid), or of its second (the repeat
    weights around ``MIX``, as ``training.blend.choose_weights`` makes them)."""
    return [(*u, 0.0, 0.0) for u in simplex_grid(NETS + 1)] if stage == 1 else repeat_grid(MIX)


def measure(n_items: int, sessions: int, stage: int = 1, margin: float | None = None, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    grid = stage_grid(stage)
    ws = torch.tensor(grid, dtype=torch.float64)
    saved, blend.MARGIN = blend.MARGIN, blend.MARGIN if margin is None else margin
    rows = min(128, chunk_rows(n_items))
    seconds = {"candidates": 0.0, "full": 0.0}
    sums = {"candidates": torch.zeros(len(grid), dtype=torch.float64),
            "full": torch.zeros(len(grid), dtype=torch.float64)}
    undecided = 0
    done = 0
    try:
        with torch.no_grad():
            while done < sessions:
                parts, target = draw_parts(gen, min(rows, sessions - done), n_items)
                for name, per_part in (("candidates", None), ("full", 0)):
                    t0 = time.perf_counter()
                    mrr, open_pairs = batch_curve(Hybrid, parts, target, ws, "expected", per_part)
                    seconds[name] += time.perf_counter() - t0
                    sums[name] += mrr
                    undecided += open_pairs if name == "candidates" else 0
                done += len(target)
    finally:
        margin, blend.MARGIN = blend.MARGIN, saved
    ms = {k: round(1e3 * v / sessions, 2) for k, v in seconds.items()}
    return {"items": n_items, "sessions": sessions, "stage": stage, "margin": margin, "points": len(grid),
            "rows_per_batch": rows, "per_part": per_part_for(n_items),
            "ms_per_session": ms, "speedup": round(seconds["full"] / seconds["candidates"], 1),
            "undecided_share": round(undecided / (len(grid) * sessions), 4),
            "curves_equal": bool(torch.equal(sums["candidates"], sums["full"])),
            "best_mrr20": round(float(sums["full"].max()) / sessions, 4)}


def measure_trained(root: Path) -> dict:
    """Both counts on ``root``'s trained hybrid (``models/model.pt``) and validation store, parts included."""
    import os

    from sessionrec import paths
    from sessionrec.graphs.store import GraphStore
    from sessionrec.training.blend import validation_curve
    from sessionrec.training.checkpoint import load_model

    os.chdir(root)
    model, _ = load_model(paths.MODEL, torch.device("cpu"))
    model.eval()
    val = GraphStore(paths.graph_store("val"))
    grid = [(*u, 0.0, 0.0) for u in simplex_grid(len(model.nets) + 1)]
    seconds, curves = {}, {}
    for name, per_part in (("candidates", None), ("full", 0)):
        t0 = time.perf_counter()
        curves[name] = validation_curve(model, val, 128, "expected", torch.device("cpu"), grid, per_part=per_part)
        seconds[name] = time.perf_counter() - t0
    return {"items": model.n_items, "sessions": len(val), "stage": 1, "margin": blend.MARGIN, "points": len(grid),
            "per_part": per_part_for(model.n_items),
            "ms_per_session": {k: round(1e3 * v / len(val), 2) for k, v in seconds.items()},
            "speedup": round(seconds["full"] / seconds["candidates"], 1), "undecided_share": None,
            "curves_equal": curves["candidates"] == curves["full"],
            "best_mrr20": round(max(curves["full"].values()), 4), "trained": True}


def table(results: list) -> str:
    """The markdown table of ``measure``'s results (docs/speed.md shows the committed run's)."""
    lines = ["| products | stage (points) | margin | sessions | whole catalogue, ms per session | candidates, ms per "
             "session | speed-up | pairs left to the whole catalogue | curves equal |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        left = "" if r["undecided_share"] is None else f"{100 * r['undecided_share']:.2f}%"
        lines.append(f"| {r['items']:,}{' (trained hybrid)' if r.get('trained') else ''} | {r['stage']} "
                     f"({r['points']}) | {r['margin']:g} | {r['sessions']:,} | {r['ms_per_session']['full']:,} | "
                     f"{r['ms_per_session']['candidates']:,} | {r['speedup']}x | {left} | "
                     f"{'yes' if r['curves_equal'] else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, nargs="+", default=[4000, 200_000])
    ap.add_argument("--sessions", type=int, default=60)
    ap.add_argument("--stages", type=int, nargs="+", choices=[1, 2], default=[1, 2])
    ap.add_argument("--margins", type=float, nargs="+", default=[blend.MARGIN],
                    help="the bound's margin (training.blend.MARGIN), each a run of its own")
    ap.add_argument("--trained", action="store_true", help="the project's trained hybrid and validation store, "
                    "parts included, besides the drawn parts")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    out = [measure(n, args.sessions, stage, margin) for n in args.items for stage in args.stages
           for margin in args.margins]
    if args.trained:
        out.append(measure_trained(Path(__file__).resolve().parents[2]))
    print(table(out))
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    ratios = ", ".join(f"{r['speedup']}x at {r['items']:,} products (stage {r['stage']}, margin {r['margin']:g})"
                       for r in out)
    print(f"weight search: {ratios}, curves equal: {all(r['curves_equal'] for r in out)}")


if __name__ == "__main__":
    main()
