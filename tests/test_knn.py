"""Session-kNN against a line-by-line transcription of session-rec's loops, on random sessions with repeats."""

import math

import numpy as np
import pytest
import torch

from sessionrec.graphs.build import build_examples
from sessionrec.graphs.store import GraphStore, write_store
from sessionrec.models import build_model

N_ITEMS = 25  # ids 1..24, 0 = padding


def random_sessions(rng, n, t0):
    sessions, t = [], t0
    for _ in range(n):
        length = int(rng.integers(2, 9))
        seq = [int(x) for x in rng.integers(1, N_ITEMS, length)]
        if length > 3:
            seq[2] = seq[0]  # a repeat
        t += int(rng.integers(0, 3)) * 3600  # equal last times happen
        times = [t - 10 * (length - 1 - j) for j in range(length)]
        sessions.append((seq, times))
    return sessions


def as_events(sessions):
    s, i, t = [], [], []
    for k, (seq, times) in enumerate(sessions):
        s += [k] * len(seq)
        i += seq
        t += times
    return np.array(s), np.array(i), np.array(t)


def reference(variant, train, query, t_query, k, sample_size, spw=1.02, snh=5 * 86400, inh=2.05):
    """session-rec's ContextKNN / VMContextKNN / STAN, default arguments, as plain loops."""
    last_time = {n: times[-1] for n, (_, times) in enumerate(train)}
    recency = sorted(last_time, key=lambda n: (last_time[n], n))  # file order breaks equal times
    rank = {n: r for r, n in enumerate(recency)}
    items = set(query)
    relevant = [n for n, (seq, _) in enumerate(train) if items & set(seq)]
    if len(relevant) > sample_size:
        relevant = sorted(relevant, key=lambda n: rank[n])[-sample_size:]
    length = len(query)
    pos_map = {}
    for p, it in enumerate(query, 1):
        pos_map[it] = p / length if variant == "vsknn" else math.exp((p - length) / spw)
    neighbours = []
    for n in relevant:
        n_items = set(train[n][0])
        if variant == "sknn":
            sim = len(items & n_items) / len(items | n_items)
        elif variant == "vsknn":
            sim = sum(pos_map[i] for i in items & n_items) / len(pos_map)
        else:
            sim = sum(pos_map[i] for i in items & n_items) / (
                math.sqrt(sum(pos_map[i] ** 2 for i in items)) * math.sqrt(len(n_items)))
            sim *= math.exp(-(t_query - last_time[n]) / snh)
        if sim > 0:
            neighbours.append((n, sim))
    neighbours = sorted(neighbours, key=lambda x: (-x[1], -rank[x[0]]))[:k]
    scores = {}
    for n, sim in neighbours:
        seq = train[n][0]
        if variant == "vsknn":
            step = next(st for st, it in enumerate(reversed(query), 1) if it in set(seq))
            weight = {j: sim / step for j in set(seq)}
        elif variant == "stan":
            pos_last = {it: p for p, it in enumerate(seq, 1)}
            p_star = max(p for p, it in enumerate(seq, 1) if it in items)
            weight = {j: sim * math.exp(-abs(pos_last[j] - p_star) / inh) for j in set(seq)}
        else:
            weight = {j: sim for j in set(seq)}
        for j, w in weight.items():
            scores[j] = scores.get(j, 0.0) + w
    return scores


def query_batch(tmp_path, queries):
    s, i, t = as_events(queries)
    feats = {f: (i if f == "item" else np.ones_like(i)) for f in ("item", "category", "sub_category", "element", "brand")}
    feats.update(price=np.zeros(len(i), np.float32), ts=t)
    write_store(tmp_path / "q.lmdb", build_examples(s, feats, "all_prefixes"), 64)
    store = GraphStore(tmp_path / "q.lmdb")
    return store.batch(np.arange(len(store)))


@pytest.mark.parametrize("variant", ["sknn", "vsknn", "stan"])
def test_knn_matches_session_rec_loops(tmp_path, variant):
    rng = np.random.default_rng(7)
    train = random_sessions(rng, 120, 1_600_000_000)
    queries = random_sessions(rng, 30, 1_600_000_000 + 200 * 3600)
    batch = query_batch(tmp_path, queries)
    k, sample = 7, 15
    model = build_model({"name": variant, "n_items": N_ITEMS, "knn_k": k, "knn_sample_size": sample})
    model.fit_events(*as_events(train))
    scores = model(batch)
    assert scores.shape == (batch.size, N_ITEMS) and torch.isneginf(scores[:, 0]).all()
    seq = batch.item[batch.alias].masked_fill(~batch.mask, 0)
    for b in range(batch.size):
        query = [int(x) for x in seq[b, : int(batch.length[b])]]
        ref = reference(variant, train, query, int(batch.time[b]), k, sample)
        expected = torch.tensor([ref.get(j, 0.0) for j in range(1, N_ITEMS)], dtype=torch.float32)
        torch.testing.assert_close(scores[b, 1:], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["sknn", "vsknn", "stan"])
def test_the_cut_and_compact_overlap_change_no_bit(tmp_path, monkeypatch, variant):
    """Candidates come from each item's ``sample_size`` most recent sessions only, the overlap from the queried
    items' rows renumbered to the sessions they hold; the scores are bit for bit those of the plain product with the
    whole item-session matrix, with items held by many more sessions than ``sample_size``."""
    import scipy.sparse as sp

    from sessionrec.models.knn import SessionKNN

    def plain(recent_t, q, w, B):
        overlap = (sp.csr_matrix((w, (q["row"], q["item"])), shape=(B, recent_t.shape[0])) @ recent_t).tocsr()
        overlap.sort_indices()
        return overlap

    from sessionrec.models import knn

    class Numpy:  # knn's numpy, counting np.unique: the renumbering calls it once more per batch
        unique_calls = 0

        def __getattr__(self, name):
            return getattr(np, name)

        def unique(self, *args, **kwargs):
            Numpy.unique_calls += 1
            return np.unique(*args, **kwargs)

    monkeypatch.setattr(knn, "np", Numpy())
    rng = np.random.default_rng(11)
    train = random_sessions(rng, 400, 1_600_000_000)
    batch = query_batch(tmp_path, random_sessions(rng, 40, 1_600_000_000 + 500 * 3600))
    scores, calls = {}, {}
    for cut in ("compact", "cut", False):
        monkeypatch.setattr(SessionKNN, "COMPACT_BELOW", 2.0 if cut == "compact" else 0.0)  # renumbered or not
        if not cut:
            monkeypatch.setattr(SessionKNN, "_most_recent", lambda self, binary_t: binary_t)
            monkeypatch.setattr(SessionKNN, "_overlap", staticmethod(plain))
        model = build_model({"name": variant, "n_items": N_ITEMS, "knn_k": 9, "knn_sample_size": 12})
        model.fit_events(*as_events(train))
        before = Numpy.unique_calls
        scores[cut] = model(batch)
        calls[cut] = Numpy.unique_calls - before
        if cut:
            lengths = np.diff(model._index["recent_t"].indptr)
            assert lengths.max() == 12  # every item is in far more than 12 of the 400 sessions
    assert calls["compact"] == calls["cut"] + 1  # one batch: the renumbering ran only where it was asked for
    assert torch.equal(scores["compact"], scores[False]) and torch.equal(scores["cut"], scores[False])
    assert (scores[False][:, 1:] > 0).any()


@pytest.mark.parametrize("variant", ["sknn", "vsknn", "stan"])
def test_sorting_only_the_candidates_that_can_be_neighbours_changes_no_bit(tmp_path, monkeypatch, variant):
    """``_may_be_among_k`` drops the candidates below their query's k-th similarity before the sort; the scores are
    bit for bit those of sorting every candidate, with many equal similarities at the cut (SKNN's Jaccard)."""
    from sessionrec.models.knn import SessionKNN

    rng = np.random.default_rng(13)
    train = random_sessions(rng, 400, 1_600_000_000)
    batch = query_batch(tmp_path, random_sessions(rng, 40, 1_600_000_000 + 500 * 3600))
    model = build_model({"name": variant, "n_items": N_ITEMS, "knn_k": 5, "knn_sample_size": 60})
    model.fit_events(*as_events(train))
    kept = []
    real = SessionKNN._may_be_among_k
    monkeypatch.setattr(SessionKNN, "_may_be_among_k", lambda *a: kept.append(real(*a)) or kept[-1])
    fast = model(batch)
    assert kept and 0 < kept[0].mean() < 0.5  # it did drop most candidates
    monkeypatch.setattr(SessionKNN, "_may_be_among_k", lambda self, rows, sim, B: slice(None))
    assert torch.equal(fast, model(batch)) and (fast[:, 1:] > 0).any()


def test_sparse_scores_are_the_dense_ones_non_zero_entries_bit_for_bit(tmp_path):
    """``SessionKNN.sparse`` (the hybrid pools STAN from it) gives every non-zero score of ``dense`` and nothing
    else, with the same bits, for any slice of rows."""
    rng = np.random.default_rng(17)
    model = build_model({"name": "stan", "n_items": N_ITEMS, "knn_k": 9, "knn_sample_size": 30})
    model.fit_events(*as_events(random_sessions(rng, 200, 1_600_000_000)))
    batch = query_batch(tmp_path, random_sessions(rng, 30, 1_600_000_000 + 300 * 3600))
    terms = model.terms(batch)
    for r0, r1 in ((0, batch.size), (3, 11), (7, 8)):
        dense = model.dense(terms, r0, r1, "cpu")
        r, c, k = (torch.from_numpy(a) for a in model.sparse(terms, r0, r1))
        assert torch.equal(dense[r, c], k) and (k > 0).all()
        dense[r, c] = 0
        assert (dense[:, 1:] == 0).all() and torch.isneginf(dense[:, 0]).all()


def test_stan_ranks_a_query_years_from_its_neighbours_as_at_their_time(tmp_path):
    """STAN's recency factor is common to a query's candidates, so its time only scales its scores. Within 250 days
    of the newest candidate the scores are session-rec's (the test above); years before (a client's clock, a random
    split) they used to overflow to inf and NaN, years after (a model served long after its data) to underflow to
    no neighbour: now both rank as at 250 days, finite and non-zero."""
    import dataclasses

    rng = np.random.default_rng(5)
    train = random_sessions(rng, 120, 1_600_000_000)
    batch = query_batch(tmp_path, random_sessions(rng, 30, 1_600_000_000 + 200 * 3600))
    model = build_model({"name": "stan", "n_items": N_ITEMS, "knn_k": 7, "knn_sample_size": 15})
    model.fit_events(*as_events(train))
    newest = 1_600_000_000 + 400 * 3600  # past every training session's last click
    day = 86400

    def at(t):
        with np.errstate(all="raise"):  # no overflow or underflow warning either
            return model(dataclasses.replace(batch, time=torch.full_like(batch.time, t)))

    near, far_after, far_before = at(newest + 250 * day), at(newest + 10 * 365 * day), at(0)
    assert torch.equal(far_after, near)  # moved to the same reference: the same bits
    for s in (near, far_before):
        assert torch.isfinite(s[:, 1:]).all() and (s[:, 1:] > 0).any(1).all()
        order = s.argsort(dim=1, descending=True, stable=True)
        assert torch.equal(order, near.argsort(dim=1, descending=True, stable=True))
    torch.testing.assert_close(far_before / far_before[:, 1:].amax(1, keepdim=True),
                               near / near[:, 1:].amax(1, keepdim=True))


def test_knn_state_dict_round_trip_and_padding_never_recommended(tmp_path):
    rng = np.random.default_rng(3)
    train, queries = random_sessions(rng, 60, 0), random_sessions(rng, 10, 10**6)
    batch = query_batch(tmp_path, queries)
    model = build_model({"name": "stan", "n_items": N_ITEMS})
    model.fit_events(*as_events(train))
    fresh = build_model({"name": "stan", "n_items": N_ITEMS})
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(batch), model(batch))
    top = torch.topk(model(batch), N_ITEMS - 1).indices
    assert (top != 0).all()


@pytest.mark.parametrize("variant", ["sknn", "vsknn", "stan"])
def test_knn_learns_a_planted_successor_map(tmp_path, variant):
    """Every item equally popular, next = succ[current]: neighbours reveal the successor, popularity cannot."""
    rng = np.random.default_rng(0)
    succ = rng.permutation(np.arange(1, N_ITEMS))
    def walks(n, t0):
        out = []
        for j in range(n):
            cur, seq = int(rng.integers(1, N_ITEMS)), []
            for _ in range(int(rng.integers(3, 6))):
                seq.append(cur)
                cur = int(succ[cur - 1])
            out.append((seq, [t0 + j] * len(seq)))
        return out
    model = build_model({"name": variant, "n_items": N_ITEMS})
    model.fit_events(*as_events(walks(300, 0)))
    batch = query_batch(tmp_path, walks(40, 10**5))
    top5 = torch.topk(model(batch), 5).indices  # V-SKNN and STAN also remind of the session's own items
    assert (top5 == batch.target[:, None]).any(1).float().mean() > 0.9
