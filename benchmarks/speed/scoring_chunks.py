"""The choices of ``sessionrec.scoring`` (and the hybrid's pooling) at 200k products, each against what it replaces,
side by side:

* rank counts: two boolean sums over the catalogue against one top-20 pass (ms per example);
* the scoring matmul by rows: into a fresh ``(rows, N)`` array against a reused buffer (GFLOP/s);
* the chunk the loss and metrics read: rows per chunk against test examples per minute of the whole loop (matmul
  into a reused 512-row buffer, then top-20 and cross-entropy per chunk);
* the top 20 of a 10-row chunk in cache: ``topk`` against ``metrics.top_n`` (the 20 blocks of 128 with the largest
  maxima), with a bare maximum (``amax``) for scale (ms per 512 rows);
* the hybrid's float64 pooling (``Hybrid.score_chunks``: three networks' softmax, a STAN part, the tie-break term,
  three weighted logs summed, into one output array) by rows pooled at once, at ``--items`` and at 4k products (ms
  per row; ``hybrid.POOL_BUDGET`` chooses the rows).

    python benchmarks/speed/scoring_chunks.py [--items 200000]

Random scores and weights (the costs do not depend on the values). Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from sessionrec.metrics import top_n
from sessionrec.models.hybrid import EPS, Hybrid, pool_rows


def per_call(f, n: int) -> float:
    f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200_000)
    args = ap.parse_args()
    N, d = args.items, 64
    w = torch.randn(N, d) * 0.1
    print(f"{N:,} products, d = {d}, {torch.get_num_threads()} threads")

    rows = 32
    s = torch.randn(rows, N)
    s_t = s[:, :1]
    two_sums = per_call(lambda: ((s > s_t).sum(1), (s == s_t).sum(1)), 30) / rows * 1e3
    top = per_call(lambda: s.topk(20, dim=1), 30) / rows * 1e3
    print(f"rank counts, ms per example: two boolean sums {two_sums:.3f}, one top-20 {top:.3f} "
          f"({two_sums / top:.1f}x)")

    print("scoring matmul, GFLOP/s: rows, fresh array, reused buffer")
    for r in (11, 64, 128, 256, 512):
        h, buf = torch.randn(r, d), torch.empty(r, N)
        n = max(3, 2000 // r)
        fresh = 2 * r * d * N / per_call(lambda: h @ w.T, n) / 1e9
        reused = 2 * r * d * N / per_call(lambda: torch.mm(h, w.T, out=buf), n) / 1e9
        print(f"  {r:4d}  {fresh:6.1f}  {reused:6.1f}")

    B = 512
    h, target, buf = torch.randn(B, d), torch.randint(1, N, (B,)), torch.empty(B, N)

    def loop(chunk: int) -> None:
        scores = torch.mm(h, w.T, out=buf)
        for r0 in range(0, B, chunk):
            part = scores[r0:r0 + chunk]
            part.topk(20, dim=1)
            F.cross_entropy(part, target[r0:r0 + chunk], reduction="sum")

    print("the loss-and-metrics chunk: rows, test examples per minute of the whole loop")
    for chunk in (8, 10, 16, 32, 64, 128, 512):
        print(f"  {chunk:4d}  {60 * B / per_call(lambda: loop(chunk), 4):10,.0f}")

    chunk = torch.randn(10, N)
    scale = B / 10 * 1e3
    t_topk = per_call(lambda: chunk.topk(20, dim=1), 50) * scale
    t_blocks = per_call(lambda: top_n(chunk, 20), 50) * scale
    t_amax = per_call(lambda: chunk.amax(1), 50) * scale
    assert torch.equal(top_n(chunk, 20)[1], chunk.topk(20, dim=1).indices)
    print(f"top 20 of 10-row chunks, ms per 512 rows: topk {t_topk:.1f}, top_n {t_blocks:.1f} "
          f"({t_topk / t_blocks:.1f}x), amax {t_amax:.1f}")

    for n_items, choices in ((N, (10, 6, 4, 2, 1)), (4000, (512, 256, 128, 64, 32))):
        print(f"the hybrid's pooling at {n_items:,} products: rows at once, ms per row "
              f"(pool_rows chooses {pool_rows(n_items, choices[0])})")
        for r in choices:
            print(f"  {r:4d}  {pooling_per_row(n_items, r, 12 * choices[0]):.3f}")


def pooling_per_row(n_items: int, rows: int, total: int) -> float:
    """Milliseconds per row of ``Hybrid.score_chunks``' pooling over ``total`` rows made ``rows`` at a time."""
    zs = [torch.randn(total, n_items) for _ in range(3)]
    stan = torch.rand(total, n_items, dtype=torch.float64)
    w = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)
    out = torch.empty(total, n_items, dtype=torch.float64)

    def pool() -> None:
        for r0 in range(0, total, rows):
            parts = [torch.softmax(z[r0:r0 + rows], dim=-1, dtype=torch.float64) for z in zs] + [stan[r0:r0 + rows]]
            tie = Hybrid.tie_term(parts[:3])
            parts[3] = parts[3].clone()
            acc = None
            for m, wm in zip((0, 1, 3), w):
                term = parts[m].add_(EPS).log_().mul_(wm)
                acc = term if acc is None else acc.add_(term)
            torch.add(acc, tie, out=out[r0:r0 + rows])

    return min(per_call(pool, 1) for _ in range(3)) / total * 1e3


if __name__ == "__main__":
    main()
