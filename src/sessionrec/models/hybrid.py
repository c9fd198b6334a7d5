r"""Ours: a weighted product of experts of separately trained networks, STAN and the session's own clicks, the weights
chosen on validation.

The weighted hybrid the original design left as future work, made repeat-aware (why it is built so, and the
validation studies that chose each part: docs/models.md). For networks ``m = 1..M`` (``hybrid_nets``), STAN, and
the repeat indicators ``\rho^{last}_i = [i = s_n]`` (the last click) and ``\rho^{earlier}_i = [i \in \{s_1..s_{n-1}\} \setminus \{s_n\}]`` (the session's other items):

.. math::
    \hat y = \sum_{m=1}^{M} w_m \log\big(\mathrm{softmax}(\hat z_m) + \epsilon\big)
            + w_{M+1} \log\Big(\frac{\hat z_{stan}}{\max_j \hat z_{stan, j}} + \epsilon\Big)
            + w_{M+2} \log(\rho^{last} + \epsilon) + w_{M+3} \log(\rho^{earlier} + \epsilon)
            + 10^{-9} \, \frac{1}{M} \sum_m \mathrm{softmax}(\hat z_m), \qquad w \in \Delta^{M+2}, \ \epsilon = 10^{-6}

a weighted geometric mean of the parts' normalised scores (log-linear pooling): an item must be likely under every
weighted part, so STAN's silence (score 0, ``log eps``) demotes what the networks alone would rank, the networks order
what STAN ties, and a repeat weight lifts the session's own items by ``w log(1 / eps)`` over the rest (the last click
and the earlier ones apart: on the REES46 head consecutive repeats are collapsed, so the last click is rarely next).

* every network is trained alone by the one training loop, its epochs chosen on its own validation MRR@20 (in the
  benchmark the hybrid reuses the very networks of the other rows, so it adds no training of its own);
* ``w`` is then chosen on validation MRR@20 (``training.blend.choose_weights``): first the networks' and STAN's mix on their simplex grid of step
  0.1 (every one of them alone and every mix are candidates), then how much weight the repeat parts take from that mix
  (0 included: they enter only when they raise validation MRR@20); the last term orders what the blend leaves tied
  (STAN's zeros at ``w_{M+1} = 1``) and never changes an order the blend decides (float64 throughout);
* with ``model.refit``, every part is refitted on train + validation (the networks for their chosen epochs) and
  ``w`` is kept.

Args: n_items; nets (``{network name: its arguments}``, the names from ``model.hybrid_nets``); stan (STAN's arguments).
Shapes: ``forward(batch)`` -> ``(B, N)`` (padding at -inf); ``parts(batch)`` -> ``(M + 3, B, N)``.
"""

from __future__ import annotations

import torch
from torch import nn

from sessionrec.graphs.batch import Batch
from sessionrec.models import COMPOSITE
from sessionrec.models.knn import STAN
from sessionrec.models.layers import mask_padding
from sessionrec.scoring import matmul_rows, reused_buffer

TIE = 1e-9
EPS = 1e-6  # floor of every normalised score before the log
TINY = torch.finfo(torch.float64).tiny  # STAN's row maximum's floor: any positive maximum normalises (STAN's scale is
# e^-50 for a query 250 days after its neighbours, knn.SessionKNN._decay_from); a 1e-12 floor silenced such rows
REPEAT_PARTS = ("repeat_last", "repeat_earlier")
# float64 entries of each part pooled at once (4 MB): the parts of a few rows stay in the 32 MB L3 cache between the
# pooling's passes. At 200k products, pooling 2 rows at a time took 1.8-2.0 ms a row against 2.0-2.9 for 10 (the
# chunk before) and 2.2-2.6 for 1 (``benchmarks/speed/scoring_chunks.py``; docs/speed.md, "The hybrid's scoring")
POOL_BUDGET = 1 << 19


def pool_rows(n_items: int, step: int, device: torch.device = torch.device("cpu")) -> int:
    """Rows whose float64 parts are pooled at once: on a CPU ``POOL_BUDGET`` entries, at least 1, at most ``step``;
    elsewhere ``step`` (a GPU has no such cache to fit, and a few rows a kernel would leave it idle)."""
    if device.type != "cpu":
        return step
    return max(1, min(step, POOL_BUDGET // max(n_items, 1)))


class SparsePart:
    """A non-negative ``(rows, N)`` float64 part (STAN's, a repeat indicator) held as its listed entries: ``key``
    (sorted, each once: ``row * N + product``) and ``values`` (float64, the dense part's bits there); 0 elsewhere. It
    answers what the weight search reads of a part (``training.blend.candidate_counts``): its best items from its
    entries (``best_of_part``), values at ``(rows, products)`` pairs (``part[rows, products]``, ``part.gather(1,
    index)``) and, for the few sessions it leaves to the whole catalogue, dense rows (``part[rows]``); ``dense()`` is
    the whole part."""

    def __init__(self, key: torch.Tensor, values: torch.Tensor, rows: int, n_items: int):
        self.key, self.values, self.shape = key, values, (rows, n_items)

    def at(self, rows: torch.Tensor, products: torch.Tensor) -> torch.Tensor:
        """The part's values at the pairs ``(rows, products)`` (any equal shapes)."""
        q = rows * self.shape[1] + products
        if not len(self.key):
            return torch.zeros(q.shape, dtype=torch.float64, device=q.device)
        pos = torch.searchsorted(self.key, q).clamp_max(len(self.key) - 1)
        return torch.where(self.key[pos] == q, self.values[pos], 0.0)

    def gather(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        assert dim == 1
        return self.at(torch.arange(self.shape[0], device=index.device).unsqueeze(1).expand_as(index), index)

    def __getitem__(self, idx):
        if isinstance(idx, tuple):
            return self.at(*idx)
        return self.dense()[idx]

    def dense(self) -> torch.Tensor:
        out = torch.zeros(self.shape[0] * self.shape[1], dtype=torch.float64, device=self.values.device)
        out[self.key] = self.values
        return out.view(self.shape)


class Hybrid(nn.Module):
    kind = COMPOSITE  # its networks are trained one by one (training.run), then training.blend chooses the weights

    def __init__(self, n_items: int, nets: dict, stan: dict):
        """``nets``: ``{network name: its constructor arguments}`` in blending order (``model.hybrid_nets``, checked
        once with the params); ``stan``: STAN's arguments. ``registry.model_config`` writes both."""
        super().__init__()
        from sessionrec.models import REGISTRY  # late: the registry imports this module

        hybrid_nets = list(nets)
        self.n_items = n_items
        self.net_names = hybrid_nets
        self.nets = nn.ModuleList([REGISTRY[n](n_items, **args) for n, args in nets.items()])
        self.knn = STAN(n_items, **stan)
        self.part_names = [*hybrid_nets, "stan", *REPEAT_PARTS]
        weights = torch.zeros(len(self.part_names), dtype=torch.float64)
        weights[:len(hybrid_nets)] = 1.0 / len(hybrid_nets)
        self.register_buffer("weights", weights)  # (M + 3,): the networks', STAN's, then the repeat parts'

    def fit_events(self, session, item, ts) -> None:
        self.knn.fit_events(session, item, ts)

    def load_nets(self, states: dict) -> None:
        """Weights of each network from ``{name: state_dict}`` (e.g. its own training run)."""
        for name, net in zip(self.net_names, self.nets):
            net.load_state_dict(states[name])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.knn.load_state_dict({k[4:]: v for k, v in state_dict.items() if k.startswith("knn.")})
        rest = {k: v for k, v in state_dict.items() if not k.startswith("knn.")}
        return nn.Module.load_state_dict(self, {**rest, **{f"knn.{k}": v for k, v in self.knn.state_dict().items()}},
                                         strict=strict, assign=assign)

    def part_chunks(self, batch: Batch, step: int, buffers: dict | None = None, need=None, fine: int | None = None,
                    sparse: bool = False):
        """Yield ``(rows, parts)`` for consecutive slices of at most ``step`` rows of ``batch``: ``parts`` ``{m: (rows,
        N) float64}``, part ``m`` as ``parts(batch)[m, rows]`` holds it, for the parts of ``need`` (all by default;
        the networks' always: the tie-break term averages them). With ``fine``, each slice of ``step`` rows comes as
        consecutive slices of at most ``fine`` rows (the networks' spans, so their scores, are ``step``'s). With
        ``sparse``, STAN's part and the repeat indicators come as ``SparsePart``: the same values at every product,
        with no pass over a ``(rows, N)`` array (the weight search reads a few hundred of each row's entries).

        Each network encodes the whole batch once and scores the catalogue for a span of rows at a time (the
        networks share ``scoring.matmul_rows``; a multiple of ``step``; into a buffer kept in ``buffers`` when it is
        shorter than the batch, as ``scoring.score_chunks`` does for one network): at 200k products, where a chunk is
        10 rows, a scoring matmul runs at 27 GFLOP/s over 11 rows and 86-112 over 128-512 into a buffer
        (docs/speed.md, ``benchmarks/speed/scoring_chunks.py``). STAN scores the whole batch once as sparse terms,
        made dense one chunk at a time, and the repeat indicators are made per chunk, so no float64 ``(rows, N)``
        array is larger than a chunk's."""
        M, N, B = len(self.nets), self.n_items, batch.size
        need = set(range(M + 3)) if need is None else set(need) | set(range(M))
        hs = [net.encode(batch) for net in self.nets]
        terms = self.knn.terms(batch) if M in need else None
        if need & {M + 1, M + 2}:
            at = torch.arange(B, device=batch.target.device).unsqueeze(1).expand_as(batch.alias)[batch.mask]
            clicks = batch.item[batch.alias[batch.mask]]  # (clicks,), rows ascending like ``at``
            last = batch.item[batch.last]
        span = step * max(1, matmul_rows(N) // M // step)
        bufs = [reused_buffer(buffers, f"hybrid-{m}", span, N, h.device) if span < B else None
                for m, h in enumerate(hs)]
        for s0 in range(0, B, span):
            s1 = min(s0 + span, B)
            zs = [net.score(h[s0:s1], out=None if buf is None else buf[:s1 - s0])
                  for net, h, buf in zip(self.nets, hs, bufs)]
            for c0 in range(s0, s1, step):
                c1 = min(c0 + step, s1)
                for r0 in range(c0, c1, fine or step):
                    r1 = min(r0 + (fine or step), c1)
                    # cast inside the softmax: the same bits as softmax(z.double()), one float64 copy fewer
                    parts = {m: torch.softmax(z[r0 - s0:r1 - s0], dim=-1, dtype=torch.float64)
                             for m, z in enumerate(zs)}
                    if terms is not None and sparse:
                        r, c, v = self.stan_entries(terms, r0, r1, hs[0].device)
                        parts[M] = SparsePart(r * N + c, v, r1 - r0, N)  # knn.sparse lists (row, product) in order
                    elif terms is not None:
                        k = self.knn.dense(terms, r0, r1, hs[0].device).double().clamp_min(0.0)  # padding -inf -> 0
                        parts[M] = k / k.amax(dim=-1, keepdim=True).clamp_min(TINY)  # 0 / TINY = 0: no neighbour
                    if need & {M + 1, M + 2}:
                        a, b = torch.searchsorted(at, torch.tensor([r0, r1], device=at.device)).tolist()
                        own = torch.arange(r1 - r0, device=at.device)
                        if sparse:  # each row's last click; its other clicked products, each once
                            last_key = own * N + last[r0:r1]
                            earlier = torch.unique((at[a:b] - r0) * N + clicks[a:b])
                            earlier = earlier[earlier != last_key[earlier // N]]
                            ones = torch.ones(max(len(earlier), r1 - r0), dtype=torch.float64, device=at.device)
                            parts[M + 1] = SparsePart(last_key, ones[:r1 - r0], r1 - r0, N)
                            parts[M + 2] = SparsePart(earlier, ones[:len(earlier)], r1 - r0, N)
                        else:
                            clicked = torch.zeros(r1 - r0, N, dtype=torch.float64, device=hs[0].device)
                            clicked[at[a:b] - r0, clicks[a:b]] = 1.0
                            ind = torch.zeros_like(clicked)
                            ind[own, last[r0:r1]] = 1.0
                            parts[M + 1], parts[M + 2] = ind, clicked - ind
                    yield slice(r0, r1), parts

    def parts(self, batch: Batch) -> torch.Tensor:
        """(M + 3, B, N) float64: each network's probabilities, STAN's scores over their row maximum, then the
        indicators of the last click and of the session's other items; 0 at padding."""
        (_, parts), = self.part_chunks(batch, batch.size)
        return torch.stack([parts[m] for m in range(len(self.part_names))])

    @staticmethod
    def pool_inputs(parts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the pooling needs from ``parts`` (M + 3, B, N), once per batch: their logs, and the tie-break term
        (the networks' mean probability). Elementwise, so any selection of items (``parts`` (M + 3, B, C)) gets the
        values the whole catalogue's would have there."""
        return torch.log(parts + EPS), Hybrid.tie_term(parts[:-1 - len(REPEAT_PARTS)])

    @staticmethod
    def tie_term(probs) -> torch.Tensor:
        """The tie-break term from the networks' probabilities ``probs`` (M, ...; a tensor or a list): ``TIE`` times
        their mean, summed in network order (in place after the first sum: the same bits, fewer float64 arrays)."""
        total = probs[0] + probs[1] if len(probs) > 1 else probs[0].clone()
        for p in probs[2:]:
            total += p
        return total.div_(len(probs)).mul_(TIE)

    @staticmethod
    def weighted_sum(w: torch.Tensor, logs: torch.Tensor) -> torch.Tensor:
        """``sum_m w[m] * logs[m]`` over the first axis (M + 3) of ``w`` and ``logs``, the rest broadcast: one multiply
        and one add per part, in part order, so an element's value does not depend on the shape it is computed in
        (the weight search scores a few candidates per session bit for bit as ``pool`` scores the whole catalogue)."""
        out = w[0] * logs[0]
        for m in range(1, logs.shape[0]):
            out = out + w[m] * logs[m]
        return out

    @staticmethod
    def pool(logs: torch.Tensor, tie: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Log-linear pooling with weights ``w`` (M + 3,), plus the tie-break term; (B, N), padding at -inf."""
        return mask_padding(Hybrid.weighted_sum(w.view(-1, 1, 1), logs) + tie)

    @staticmethod
    def tie_bound(kth: torch.Tensor) -> torch.Tensor:
        """(B,) an upper bound of the tie-break term of any item whose part scores are at most ``kth`` (M + 3, B)."""
        return TIE * kth[:-1 - len(REPEAT_PARTS)].mean(dim=0)

    def explain(self, batch: Batch, items: torch.Tensor) -> dict:
        """Each part's weight and its contribution ``w_m log(normalised score + eps)`` to the score of every item of
        ``items`` (B, k): the pooled score is their sum (plus the 1e-9 tie-break)."""
        logs, _ = self.pool_inputs(self.parts(batch))  # (M + 3, B, N)
        picked = torch.gather(logs, 2, items.unsqueeze(0).expand(logs.shape[0], -1, -1))  # (M + 3, B, k)
        return {"what": "hybrid: each part's weight and its contribution to each recommended product's score",
                "clicks": None, "parts": {name: (float(w), w * picked[m])
                                          for m, (name, w) in enumerate(zip(self.part_names, self.weights))}}

    def score_chunks(self, batch: Batch, step: int, buffers: dict | None = None):
        """Yield ``(rows, scores)``: ``forward(batch)[rows]`` for consecutive slices of at most ``step`` rows, from
        ``part_chunks`` (``scoring.score_chunks`` reads a hybrid so). Pooled as ``pool(*pool_inputs(parts),
        weights)`` bit for bit, without what a zero weight leaves out: a part of weight 0 adds ``0 * log(p + eps)``,
        an exact zero (the log is finite), so its log is not taken, STAN and the repeat indicators are not made when
        their weights are 0, and nothing is stacked: each of these is a pass over float64 ``(rows, N)`` arrays, and
        the weights chosen at 126k products leave three of six parts out. Parts of non-zero weight are summed in part
        order, as ``weighted_sum`` does (tests/test_models.py compares the two). The chunk's parts are not read again,
        so each term is made in place in its part's array: the same operations, so the same bits, with fewer float64
        ``(rows, N)`` arrays made and filled (CHANGELOG: median 1.15x at 200k products). The parts are made and pooled
        ``pool_rows`` rows at a time, into a ``(step, N)`` float64 buffer (kept in ``buffers``) yielded whole: the
        elementwise passes then read and write arrays that stay in cache, and the consumer still reads ``step`` rows
        at a time. STAN's part, 0 at all but a few hundred products a session, is pooled from its non-zero entries
        (``add_stan``)."""
        w = self.weights
        active = [m for m in range(len(self.part_names)) if w[m] != 0]
        B, N, M = batch.size, self.n_items, len(self.nets)
        fine = pool_rows(N, step, batch.target.device)
        out = None if fine == step else reused_buffer(buffers, "hybrid-pool", min(step, B), N, batch.target.device,
                                                       torch.float64)
        if M in active:  # STAN's part is pooled sparse (``add_stan``): its terms and its silent products' term once
            terms = self.knn.terms(batch)
            silent = torch.full((1,), EPS, dtype=torch.float64, device=batch.target.device).log_().mul_(w[M])
        for rows, parts in self.part_chunks(batch, step, buffers, need=[m for m in active if m != M], fine=fine):
            tie = self.tie_term([parts[m] for m in range(M)])  # before the logs overwrite the parts
            total = None
            for m in active:
                if m == M:
                    total = self.add_stan(total, terms, rows, w[M], silent)
                    continue
                term = parts[m].add_(EPS).log_().mul_(w[m])  # w[m] * log(parts[m] + EPS)
                total = term if total is None else total.add_(term)
            if out is None:
                yield rows, mask_padding(total.add_(tie))
                continue
            c0 = rows.start - rows.start % step  # the slice of ``step`` rows this one belongs to
            torch.add(total, tie, out=out[rows.start - c0:rows.stop - c0])
            if rows.stop - c0 == step or rows.stop == B:
                yield slice(c0, rows.stop), mask_padding(out[:rows.stop - c0])

    def stan_entries(self, terms, r0: int, r1: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """STAN's part of the batch's rows ``r0:r1`` as its listed entries ``(rows, products, values)`` (rows from 0
        at ``r0``; values float64): each entry's float32 sum over its row maximum (0 for a row with none, the floor
        ``TINY``), the dense part's operations on the same values, so its bits there; 0 at every other product."""
        r, c, k = (torch.from_numpy(a).to(device) for a in self.knn.sparse(terms, r0, r1))
        k = k.double()
        top = torch.zeros(r1 - r0, dtype=torch.float64, device=device).scatter_reduce_(0, r, k, "amax")
        return r, c, k / top.clamp_min(TINY)[r]

    def add_stan(self, total: torch.Tensor | None, terms, rows: slice, w: torch.Tensor, silent: torch.Tensor
                 ) -> torch.Tensor:
        """``total + w * log(stan + EPS)`` for STAN's part ``stan`` of ``rows`` (``total`` None: the term alone;
        ``silent``: the term of a product STAN does not score, ``w * log(0 + EPS)``, made once per batch), bit
        for bit as from the dense part, from STAN's non-zero entries only: the part is 0 at all but a few hundred
        products a session (``w * log(EPS)`` there, one constant), so the dense part's passes over float64 ``(rows,
        N)`` arrays (made dense, cast, its row maximum, the division, the log) become one scalar addition. The same
        operations on the same values: the entries' float32 sums, their row maximum (0 for a row with none, the
        floor ``TINY``), the division, ``+ EPS``, the log and the weight, added to ``total`` as the dense term was."""
        r, c, v = self.stan_entries(terms, rows.start, rows.stop, silent.device)
        n = rows.stop - rows.start
        term = v.add_(EPS).log_().mul_(w)
        if total is None:
            total = silent.expand(n, self.n_items).clone()
            total[r, c] = term
            return total
        at = total[r, c]
        total.add_(silent)
        total[r, c] = at.add_(term)
        return total

    def forward(self, batch: Batch) -> torch.Tensor:
        (_, scores), = self.score_chunks(batch, batch.size)
        return scores
