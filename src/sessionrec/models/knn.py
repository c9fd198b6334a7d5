"""Session-kNN: SKNN (Jannach & Ludewig, RecSys 2017), V-SKNN (Ludewig & Jannach, UMUAI 2018) and STAN (Garg et al.,
SIGIR 2019), as session-rec implements them (``ContextKNN``, ``VMContextKNN``, ``STAN``, default arguments), with
sparse matrices over a whole batch instead of Python loops over sessions.

For a current session :math:`s = (x_1, \\dots, x_l)` (repeats allowed; a repeated item keeps the weight of its last
position :math:`p(i)`) and a training session :math:`n` (its item set :math:`I_n`, its last click time :math:`t_n`):

* candidates: the training sessions sharing an item with :math:`s`, the ``sample_size`` most recent of them;
* similarity

  - SKNN: Jaccard :math:`|I_s \\cap I_n| / |I_s \\cup I_n|`;
  - V-SKNN: :math:`\\sum_{i \\in I_s \\cap I_n} p(i)/l \\; / \\; |I_s|`;
  - STAN: :math:`\\sum_{i \\in I_s \\cap I_n} w_i / (\\sqrt{\\sum_{i \\in I_s} w_i^2} \\sqrt{|I_n|}) \\cdot
    e^{-(t_s - t_n)/\\lambda_{snh}}` with :math:`w_i = e^{(p(i) - l)/\\lambda_{spw}}`, :math:`t_s` the time of the
    last click;

* the ``k`` most similar candidates are the neighbours (ties: the more recent session first);
* score of item :math:`j`: :math:`\\sum_{n \\ni j} \\mathrm{sim}(s, n) \\cdot d(n, j)` with

  - SKNN: :math:`d = 1`;
  - V-SKNN: :math:`d = 1 / r_n`, :math:`r_n` the position from the end of the most recent click of :math:`s`
    that :math:`n` contains (1 = the last click);
  - STAN: :math:`d = e^{-|q_n(j) - q_n^*|/\\lambda_{inh}}`, :math:`q_n(j)` the last position of :math:`j` in
    :math:`n`, :math:`q_n^*` the last position in :math:`n` of an item of :math:`s`.

STAN's :math:`t_s` enters a query's scores only as the factor :math:`e^{-t_s/\\lambda_{snh}}` common to all of them,
so a query over ``DECAY_SPAN`` lambdas (250 days) from its newest candidate is scored as at that distance: the same
ranking, in floating-point range (``_decay_from``).

Items of the current session can be recommended again (session-rec's ``remind=True`` for V-SKNN and STAN; SKNN scores
every neighbour item too). Items in no neighbour score 0 and tie; the metrics module scores ties by expectation.
Shapes: ``forward(batch)`` -> ``(B, N)``; the fitted state is the training sessions' item sequences and last times,
kept as buffers so the checkpoint stays a plain ``state_dict``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from sessionrec.graphs.batch import Batch, ranges
from sessionrec.models import CLICKS
from sessionrec.models.layers import mask_padding, no_explanation

DEFAULT_SAMPLE_SIZE = {"sknn": 1000, "vsknn": 1000, "stan": 5000}  # session-rec's defaults


class SessionKNN(nn.Module):
    """Args: n_items (catalogue size, padding id 0 included); knn_k neighbours; knn_sample_size candidates (0 = the
    variant's session-rec default); STAN's lambdas (``stan_lambda_snh`` in days). The variant (sknn | vsknn | stan)
    is the subclass: ``SKNN``, ``VSKNN``, ``STAN``.
    """

    kind = CLICKS
    variant = "stan"
    COMPACT_BELOW = 1 / 8  # ``_overlap`` renumbers the candidate sessions below this share of all sessions

    def __init__(self, n_items: int, knn_k: int = 100, knn_sample_size: int = 0, stan_lambda_spw: float = 1.02,
                 stan_lambda_snh: float = 5.0, stan_lambda_inh: float = 2.05):
        super().__init__()
        self.n_items, self.k = n_items, knn_k
        self.sample_size = knn_sample_size or DEFAULT_SAMPLE_SIZE[self.variant]
        self.spw, self.snh, self.inh = stan_lambda_spw, stan_lambda_snh * 24 * 3600, stan_lambda_inh
        # Fitted state: training sessions ordered by last click time (index = recency rank), their click sequences.
        self.register_buffer("seq_ptr", torch.zeros(1, dtype=torch.int64))
        self.register_buffer("seq_items", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("session_time", torch.zeros(0, dtype=torch.int64))
        self._index = None

    # -- fitting ---------------------------------------------------------------------------------------------------
    def fit_events(self, session: np.ndarray, item: np.ndarray, ts: np.ndarray) -> None:
        """Rows sorted by session, then time (as the split Parquet files are)."""
        session, item, ts = np.asarray(session), np.asarray(item, np.int64), np.asarray(ts, np.int64)
        if len(item) and (item.min() < 1 or item.max() >= self.n_items):
            raise ValueError(f"training items must lie in 1..{self.n_items - 1}")
        starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
        ends = np.r_[starts[1:], len(session)]
        last_time = np.maximum.reduceat(ts, starts) if len(starts) else np.zeros(0, np.int64)
        order = np.argsort(last_time, kind="stable")  # recency rank; equal times keep file order
        lengths = (ends - starts)[order]
        rows = ranges(starts[order], lengths)
        self.seq_ptr = torch.from_numpy(np.r_[0, np.cumsum(lengths)].astype(np.int64))
        self.seq_items = torch.from_numpy(item[rows])
        self.session_time = torch.from_numpy(last_time[order])
        self._index = None

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """The buffers' sizes depend on the training data, so they are replaced rather than copied into."""
        for name in ("seq_ptr", "seq_items", "session_time"):
            setattr(self, name, state_dict[name].clone())
        self._index = None
        return nn.modules.module._IncompatibleKeys([], [])

    def _build_index(self):
        ptr = self.seq_ptr.numpy()
        items = self.seq_items.numpy()
        n_sessions = len(ptr) - 1
        sess_of = np.repeat(np.arange(n_sessions), np.diff(ptr))
        pos = np.arange(len(items)) - ptr[sess_of] + 1  # 1-based position in its session
        # last occurrence of each item within its session: the next click of the same (session, item) is absent
        key = sess_of * self.n_items + items
        order = np.lexsort((pos, key))
        is_last = np.ones(len(items), bool)
        is_last[order[:-1][key[order][1:] == key[order][:-1]]] = False
        binary = sp.csr_matrix((np.ones(is_last.sum(), np.float64), (sess_of[is_last], items[is_last])),
                               shape=(n_sessions, self.n_items))
        self._index = {"ptr": ptr, "items": items, "pos": pos, "is_last": is_last,
                       "recent_t": self._most_recent(binary.T.tocsr()),
                       "size": np.asarray(binary.sum(axis=1)).ravel(),
                       "time": self.session_time.numpy().astype(np.float64)}
        return self._index

    def _most_recent(self, binary_t: sp.csr_matrix) -> sp.csr_matrix:
        """Each item's ``sample_size`` most recent sessions only (its row of the (N, S) item-session matrix cut to
        its last entries: sessions are indexed by recency). The same candidates and overlaps as the whole matrix: a
        session among a query's ``sample_size`` most recent candidates has fewer than ``sample_size`` more recent
        ones among the sessions of any item it shares with the query, so it is in every such item's cut row, and
        its overlap sums the same terms in the same order. A query's cost is then bounded by its items times
        ``sample_size``, not by how many sessions hold them: at 8M training sessions and 200k products, 19.8 ms per
        test session with the whole matrix, 2.0 with this and ``_overlap`` (``benchmarks/speed/stan_scale.py``)."""
        binary_t.sort_indices()
        lengths = np.diff(binary_t.indptr)
        kept = np.minimum(lengths, self.sample_size)
        take = ranges(binary_t.indptr[1:] - kept, kept)
        return sp.csr_matrix((binary_t.data[take], binary_t.indices[take], np.r_[0, np.cumsum(kept)]),
                             shape=binary_t.shape)

    # -- scoring ---------------------------------------------------------------------------------------------------
    def _queries(self, batch: Batch):
        """Per query, its distinct items with the 1-based position of their last click, and the session length."""
        seq = batch.item[batch.alias].masked_fill(~batch.mask, 0).cpu().numpy()  # (B, L)
        B, L = seq.shape
        length = batch.length.cpu().numpy()
        rows = np.repeat(np.arange(B), L)
        pos = np.tile(np.arange(1, L + 1), B)
        items = seq.ravel()
        keep = items > 0
        rows, pos, items = rows[keep], pos[keep], items[keep]
        key = rows * self.n_items + items
        last = {}  # the last position per (query, item): sort by key then position, take each key's final entry
        order = np.lexsort((pos, key))
        k_sorted = key[order]
        is_end = np.r_[k_sorted[1:] != k_sorted[:-1], True]
        sel = order[is_end]
        last["row"], last["item"], last["pos"] = rows[sel], items[sel], pos[sel]
        last["key"] = key[sel]  # sorted
        return last, length

    def explain(self, batch: Batch, items: torch.Tensor) -> dict:
        return no_explanation(self.variant, "has no attention: it scores by similar training sessions")

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.dense(self.terms(batch), 0, batch.size, batch.item.device)

    def dense(self, terms: tuple[np.ndarray, np.ndarray], r0: int, r1: int, device) -> torch.Tensor:
        """(r1 - r0, N) float32 scores of the batch's rows ``r0:r1`` from its ``terms``, padding at -inf: each
        product's terms summed in their order (``np.bincount``), as for the whole batch, so the same bits."""
        key, weight = terms
        N = self.n_items
        # key // N (the row) never decreases, so the rows' terms are one slice found by bisection
        a, b = np.searchsorted(key, [r0 * N, r1 * N])
        scores = np.bincount(key[a:b] - r0 * N, weights=weight[a:b], minlength=(r1 - r0) * N).reshape(r1 - r0, N)
        return mask_padding(torch.from_numpy(scores.astype(np.float32)).to(device))

    DECAY_SPAN = 50  # how many lambda_snh the decay's reference time may lie from a query's newest candidate

    def _decay_from(self, batch: Batch, rows: np.ndarray, t_n: np.ndarray) -> np.ndarray:
        """STAN's recency reference per candidate pair: the query's time ``t_s``, moved to within ``DECAY_SPAN``
        lambdas of the newest of its candidates (``rows`` ascending, their last times ``t_n``). A query's decays all
        share the factor this move changes, so its neighbours, their order and its ranking are those of ``t_s``; only
        its scores' scale changes, and only for a query over 250 days (at the default 5-day lambda) from every
        candidate. Without it a query 443 days before its candidates (a client's clock, a ``random`` split) overflowed
        float32 to inf and NaN, and one ten years after them underflowed to no neighbour at all."""
        t_s = batch.time.cpu().numpy().astype(np.float64)[rows]
        if not len(rows):
            return t_s
        first = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
        newest = np.repeat(np.maximum.reduceat(t_n, first), np.diff(np.r_[first, len(rows)]))
        span = self.DECAY_SPAN * self.snh
        return np.clip(t_s, newest - span, newest + span)

    def sparse(self, terms: tuple[np.ndarray, np.ndarray], r0: int, r1: int) -> tuple[np.ndarray, ...]:
        """The non-zero entries of ``dense(terms, r0, r1)`` (padding aside): ``(rows, products, float32 scores)``,
        rows from 0 at ``r0``, each entry's terms summed in their order as ``dense``'s ``np.bincount`` sums them (one
        bin per entry here), so the same bits; in (row, product) order."""
        key, weight = terms
        a, b = np.searchsorted(key, [r0 * self.n_items, r1 * self.n_items])
        entry, of = np.unique(key[a:b] - r0 * self.n_items, return_inverse=True)
        sums = np.bincount(of, weights=weight[a:b], minlength=len(entry))
        return entry // self.n_items, entry % self.n_items, sums.astype(np.float32)

    def terms(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Every term of the batch's scores: ``(key, weight)`` with ``key = row * N + product``, rows in order
        (``dense`` sums them into scores)."""
        idx = self._index or self._build_index()
        q, length = self._queries(batch)
        B, N = batch.size, self.n_items
        l_of = length[q["row"]].astype(np.float64)
        if self.variant == "sknn":
            w = np.ones(len(q["row"]))
        elif self.variant == "vsknn":
            w = q["pos"] / l_of
        else:
            w = np.exp((q["pos"] - l_of) / self.spw)
        overlap = self._overlap(idx["recent_t"], q, w, B)  # (B, S): weighted intersection (SKNN: |I_s & I_n|)
        rows = np.repeat(np.arange(B), np.diff(overlap.indptr))
        sess, ov = overlap.indices, overlap.data
        # the sample_size most recent candidates: sessions are indexed by recency, so the row's last entries
        from_end = np.repeat(overlap.indptr[1:], np.diff(overlap.indptr)) - 1 - np.arange(len(sess))
        keep = from_end < self.sample_size
        rows, sess, ov = rows[keep], sess[keep], ov[keep]
        q_size = np.bincount(q["row"], minlength=B).astype(np.float64)
        if self.variant == "sknn":
            sim = ov / (q_size[rows] + idx["size"][sess] - ov)
        elif self.variant == "vsknn":
            sim = ov / q_size[rows]
        else:
            norm = np.sqrt(np.bincount(q["row"], weights=w ** 2, minlength=B))
            t_n = idx["time"][sess]
            sim = ov / (norm[rows] * np.sqrt(idx["size"][sess])) * np.exp(-(self._decay_from(batch, rows, t_n) - t_n)
                                                                             / self.snh)
        # the k most similar per query (ties: more recent session first), sorted among those that can be
        may = self._may_be_among_k(rows, sim, B)
        rows, sess, sim = rows[may], sess[may], sim[may]
        order = np.lexsort((-sess, -sim, rows))
        rows, sess, sim = rows[order], sess[order], sim[order]
        first = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
        rank = np.arange(len(rows)) - np.repeat(first, np.diff(np.r_[first, len(rows)]))
        keep = (rank < self.k) & (sim > 0)
        rows, sess, sim = rows[keep], sess[keep], sim[keep]
        if not len(rows):
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        return self._terms(idx, q, length, rows, sess, sim, N)

    def _may_be_among_k(self, rows: np.ndarray, sim: np.ndarray, B: int):
        """The candidates (``rows`` ascending) whose similarity is at least their query's ``k``-th largest (every
        candidate of a query with at most ``k``): a query's ``k`` first in (similarity, recency) order are among them,
        in the same order, so sorting only these gives the same neighbours in the same order (the same bits). At
        5,000 candidates per query the sort of all of them was most of STAN's scoring (CHANGELOG); each query's
        ``k``-th largest comes from one ``np.partition`` over a (queries, most candidates) array instead. Returns a
        boolean mask, or a slice keeping everything."""
        counts = np.bincount(rows, minlength=B)
        widest = int(counts.max(initial=0))
        if widest <= self.k:
            return slice(None)
        first = np.r_[0, np.cumsum(counts)[:-1]]
        negated = np.full((B, widest), np.inf)
        negated[rows, np.arange(len(rows)) - first[rows]] = -sim
        kth = -np.partition(negated, self.k - 1, axis=1)[:, self.k - 1]  # -inf for a query with fewer than k
        return sim >= kth[rows]

    @classmethod
    def _overlap(cls, recent_t: sp.csr_matrix, q: dict, w: np.ndarray, B: int) -> sp.csr_matrix:
        """``Q @ recent_t`` with ``Q`` the (B, N) query weights: each query's weighted overlap with every candidate
        session, as a (B, S) CSR matrix with sorted indices, over the queried items' rows only. scipy's product
        allocates and clears two arrays as long as the number of columns, which at millions of training sessions
        costs more than the product: where those rows hold under ``COMPACT_BELOW`` of the sessions, their sessions
        are renumbered in order to a compact range first (a sort of the rows' entries; where they already cover a
        good share of the sessions the two arrays are no larger than that work, so the rows are used as they are:
        a guard, not a measured optimum). Either way the same terms are summed in the same order (items ascending),
        so the same bits."""
        items, col = np.unique(q["item"], return_inverse=True)
        sub = recent_t[items]
        compact = sub.nnz < cls.COMPACT_BELOW * recent_t.shape[1]
        if compact:
            sessions, renumbered = np.unique(sub.indices, return_inverse=True)
            sub = sp.csr_matrix((sub.data, renumbered.astype(np.int64), sub.indptr), shape=(len(items), len(sessions)))
        overlap = (sp.csr_matrix((w, (q["row"], col)), shape=(B, len(items))) @ sub).tocsr()
        overlap.sort_indices()
        if compact:
            overlap = sp.csr_matrix((overlap.data, sessions[overlap.indices], overlap.indptr),
                                    shape=(B, recent_t.shape[1]))
        return overlap

    def _terms(self, idx, q, length, rows, sess, sim, N):
        ptr = idx["ptr"]
        n_len = ptr[sess + 1] - ptr[sess]
        pair = np.repeat(np.arange(len(rows)), n_len)  # one entry per click of each neighbour
        click = ranges(ptr[sess], n_len)
        item, pos, is_last = idx["items"][click], idx["pos"][click], idx["is_last"][click]
        row = rows[pair]
        # is the neighbour's click an item of the query, and where in the query was it last clicked?
        key = row * N + item
        at = np.searchsorted(q["key"], key)
        at = np.minimum(at, len(q["key"]) - 1)
        member = q["key"][at] == key
        weight = sim[pair]
        if self.variant == "vsknn":
            from_end = np.where(member, length[row] - q["pos"][at] + 1, np.iinfo(np.int64).max)
            step = np.full(len(rows), np.iinfo(np.int64).max)
            np.minimum.at(step, pair, from_end)
            weight = weight / step[pair]
        elif self.variant == "stan":
            p_star = np.zeros(len(rows), np.int64)
            np.maximum.at(p_star, pair, np.where(member, pos, 0))
            weight = weight * np.exp(-np.abs(pos - p_star[pair]) / self.inh)
        return (row * N + item)[is_last], weight[is_last]


class SKNN(SessionKNN):
    variant = "sknn"


class VSKNN(SessionKNN):
    variant = "vsknn"


class STAN(SessionKNN):
    variant = "stan"
