"""Which repeat parts should the hybrid pool? A study on validation only, from a benchmark's saved network runs.

For each seed: the networks of ``model.hybrid_nets`` as chosen on validation (``models/benchmark/NET-SEED.pt``,
``chosen_state``: trained on the train split only), STAN fitted on the train split, and candidate repeat parts, all
scored on the validation split. The weight choice of ``training.blend.choose_weights`` (best MRR@20 on the simplex grid of step 0.1) is
cross-validated inside validation: 2 folds by session, weights chosen on one fold, MRR@20 and R@20 measured on the
other. Variants: no repeat part; within-session frequency (normalised by its maximum); recency-decayed frequency
(0.5 per step back); the last-click and earlier-clicks indicators, with the weights chosen on the full grid of all
parts or in the two stages of ``training.blend.choose_weights`` (what ``hybrid.py`` does). Run it in a project whose
``dvc repro benchmarks/dvc.yaml`` is done:

    python benchmarks/studies/hybrid_parts_cv.py --seeds 1 2 3 [--max-examples 1200]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from sessionrec import paths
from sessionrec.graphs.store import GraphStore
from sessionrec.metrics import metrics_from_counts, rank_counts
from sessionrec.models import build_model
from sessionrec.models.hybrid import EPS, TIE, Hybrid
from sessionrec.training.blend import simplex_grid
from sessionrec.training.checkpoint import load_verified
from sessionrec.params import load_params
from sessionrec.training.run import model_config, read_events, with_model


def frequency_parts(batch, n_items: int) -> dict:
    """Within-session click counts, plain and decayed by 0.5 per step back from the last click, each over its max."""
    B, L = batch.alias.shape
    seq, m = batch.item[batch.alias] * batch.mask, batch.mask.double()
    back = (batch.length.unsqueeze(1) - 1 - torch.arange(L).unsqueeze(0)).clamp_min(0).double()
    out = {}
    for name, w in (("frequency", m), ("recency", m * 0.5 ** back)):
        c = torch.zeros(B, n_items, dtype=torch.float64).scatter_add_(1, seq, w)
        c[:, 0] = 0
        out[name] = c / c.amax(1, keepdim=True)
    return out


def per_example(p: torch.Tensor, n_nets: int, grid, target, n_items: int):
    """(MRR@20, R@20), each (len(grid), B), of the weight vectors ``grid`` over the parts ``p`` (P, B, N)."""
    logs, tie = torch.log(p + EPS), TIE * p[:n_nets].mean(0)  # Hybrid.pool_inputs, for any number of extra parts
    mrr, r20 = [], []
    for w in torch.tensor(grid, dtype=torch.float64):
        m = metrics_from_counts(*rank_counts(Hybrid.pool(logs, tie, w), target, masked=True), [20], "expected")
        mrr.append(m["MRR@20"])
        r20.append(m["R@20"])
    return torch.stack(mrr), torch.stack(r20)


def two_stage(parts, n_nets, target, n_items, fit, held) -> tuple:
    """``training.blend.choose_weights``'s choice made on the examples ``fit``, scored on ``held``: (MRR@20, R@20, weights). Its rule,
    restated over in-memory parts (``tune`` reads a whole store, and the folds are subsets of one)."""
    base = simplex_grid(n_nets + 1)
    first, _ = per_example(parts, n_nets, [(*u, 0.0, 0.0) for u in base], target, n_items)
    uniform = np.full(n_nets + 1, 1 / (n_nets + 1))
    u = max(range(len(base)), key=lambda i: (first[i, fit].mean().item(),
                                             -float(np.abs(np.array(base[i]) - uniform).sum())))
    second = [(*(round((1 - a / 10 - b / 10) * x, 12) for x in base[u]), a / 10, b / 10)
              for a in range(11) for b in range(11 - a)]
    mrr, r20 = per_example(parts, n_nets, second, target, n_items)
    best = max(range(len(second)), key=lambda i: (mrr[i, fit].mean().item(), -(second[i][-2] + second[i][-1]),
                                                  -second[i][-2]))
    return mrr[best, held].mean().item(), r20[best, held].mean().item(), second[best]


def row(held: list, val_mrr: float, weights) -> dict:
    """One variant's summary: held-out means over the two folds, and its choice on the whole validation split."""
    return {"cv_MRR@20": round(100 * float(np.mean([h[0] for h in held])), 2),
            "cv_R@20": round(100 * float(np.mean([h[1] for h in held])), 2),
            "val_MRR@20_at_best": round(100 * val_mrr, 2), "best_weights": [round(x, 2) for x in weights]}


def study(seed: int, params, max_examples: int) -> dict:
    nets = list(params.model.hybrid_nets)
    runs = {n: load_verified(paths.benchmark_run(n, seed, "pt")) for n in nets}
    config = model_config(with_model(params, name="hybrid"))
    model = build_model(config)
    model.load_nets({n: r["chosen_state"] for n, r in runs.items()})
    ev = read_events("train")
    model.fit_events(ev["session"], ev["item"], ev["ts"])
    model.eval()
    n_items, parts, extra, target, session = config["n_items"], [], {}, [], []
    val = GraphStore(paths.graph_store("val"))
    with torch.no_grad():
        for b in val.iter_batches(256):
            parts.append(model.parts(b))
            for k, v in frequency_parts(b, n_items).items():
                extra.setdefault(k, []).append(v)
            target.append(b.target)
            session.append(b.session)
    val.close()
    parts, target, session = torch.cat(parts, 1), torch.cat(target), torch.cat(session)
    extra = {k: torch.cat(v).unsqueeze(0) for k, v in extra.items()}
    if len(target) > max_examples:
        keep = torch.from_numpy(np.random.default_rng(0).choice(len(target), max_examples, replace=False))
        parts, target, session = parts[:, keep], target[keep], session[keep]
        extra = {k: v[:, keep] for k, v in extra.items()}
    fold = torch.unique(session, return_inverse=True)[1] % 2
    base = parts[:len(nets) + 1]
    variants = {"none": base, "frequency": torch.cat([base, extra["frequency"]]),
                "recency": torch.cat([base, extra["recency"]]), "last+earlier": parts}
    out = {}
    for name, p in variants.items():
        grid = simplex_grid(p.shape[0])
        mrr, r20 = per_example(p, len(nets), grid, target, n_items)  # (grid, examples)
        held = []
        for f in (0, 1):
            chosen = mrr[:, fold == f].mean(1).argmax()
            held.append((mrr[chosen, fold != f].mean().item(), r20[chosen, fold != f].mean().item()))
        best = int(mrr.mean(1).argmax())
        out[name] = row(held, mrr[best].mean().item(), grid[best])
    held = [two_stage(parts, len(nets), target, n_items, fold == f, fold != f)[:2] for f in (0, 1)]
    whole = two_stage(parts, len(nets), target, n_items, fold >= 0, fold >= 0)
    out["last+earlier, two stages"] = row(held, whole[0], whole[2])
    return {"seed": seed, "examples": len(target), **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--max-examples", type=int, default=10**9, help="validation examples drawn at random (seed 0)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = load_params(paths.PARAMS)
    rows = [study(seed, params, args.max_examples) for seed in args.seeds]
    for r in rows:
        print(json.dumps(r))
    for name in rows[0]:
        if isinstance(rows[0][name], dict):
            print(f"{name:>25}: held-out MRR@20 {np.mean([r[name]['cv_MRR@20'] for r in rows]):.2f}, "
                  f"R@20 {np.mean([r[name]['cv_R@20'] for r in rows]):.2f} (mean over seeds {args.seeds})")


if __name__ == "__main__":
    main()
