"""Every registered model: output shape and padding masked; each learns a planted pattern beyond popularity (pop ranks
by train frequency); SR-GNN's in/out adjacency against the paper's worked example. The learned-quality checks and
their bounds live in ``quality.py`` (``python tests/margins.py`` measures their spread over seeds and threads)."""

import numpy as np
import pytest
import torch

from conftest import N_ITEMS, session_store
from quality import CHECKS, assert_within_bounds, blend, config, repeat_store, train_config
from quality import planted as planted_data
from sessionrec.graphs.build import session_graph
from sessionrec.models import NETWORK, REGISTRY, build_model
from sessionrec.models.srgnn import SRGNN


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_data(tmp_path_factory.mktemp("planted"))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_scores_cover_the_catalogue_and_never_padding(planted, name):
    (train, events), _, test = planted
    model = build_model(config(name))
    if model.kind != NETWORK:
        model.fit_events(events["session"], events["item"], events["ts"])
    model.eval()
    batch = test.batch(np.arange(17))
    with torch.no_grad():
        scores = model(batch)
    assert scores.shape == (17, N_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    assert (torch.topk(scores, N_ITEMS).indices != 0).all()


@pytest.mark.parametrize("check", [c for c in CHECKS if c.startswith(("planted_map[", "sampled_planted_map["))])
def test_neural_model_learns_a_planted_successor_map(tmp_path, check):
    assert_within_bounds(check, CHECKS[check](0, tmp_path))


def test_popularity_cannot_learn_the_planted_map(tmp_path):
    assert_within_bounds("pop_planted_map", CHECKS["pop_planted_map"](0, tmp_path))


def test_hybrid_learns_the_planted_map_from_its_networks_and_weights_chosen_on_validation(tmp_path):
    """A trained GRU4Rec, an untrained SR-GNN and STAN: the blend learns the planted map, and the untrained network
    alone scores poorly on validation."""
    assert_within_bounds("hybrid_planted_map", CHECKS["hybrid_planted_map"](0, tmp_path))


def fitted_hybrid(planted, weights=None):
    """The default hybrid (untrained networks, seed 0) with STAN fitted on the planted training clicks, in eval mode,
    with ``weights`` if given."""
    (_, events), _, _ = planted
    torch.manual_seed(0)
    model = build_model(config("hybrid"))
    model.fit_events(events["session"], events["item"], events["ts"])
    if weights is not None:
        model.weights.copy_(torch.tensor(weights, dtype=torch.float64))
    return model.eval()


def test_hybrid_weights_are_the_best_point_of_the_validation_curve(planted):
    (_, events), val, _ = planted
    cfg = train_config(0, epochs=1, patience=1)
    torch.manual_seed(0)
    nets = {n: build_model(config(n)).state_dict() for n in ("gru4rec", "srgnn")}
    hcfg = config("hybrid")
    f = blend(hcfg, nets, val, cfg, events)
    metrics, curve = f.val, f.curve
    model = build_model(hcfg)
    model.load_state_dict(f.state)
    w = model.weights.tolist()
    assert model.part_names == ["gru4rec", "srgnn", "stan", "repeat_last", "repeat_earlier"]
    assert len(curve) == 66 + 65 and abs(sum(w) - 1) < 1e-9  # the 3-part grid, then 66 repeat mixes (one shared)
    assert curve[tuple(w)] == max(curve.values()) and metrics["MRR@20"] == pytest.approx(curve[tuple(w)])


@pytest.mark.parametrize("per_part", [1, 3, 8, None])
def test_the_weight_search_counts_exactly_what_the_full_catalogue_counts(planted, per_part):
    """The weight search scores a few candidates per session and the whole catalogue only where they leave a
    point undecided: its validation curve equals the full count's bit for bit, at sizes that leave many pairs
    undecided (per_part 1) and few (8, and the default); untrained networks, STAN fitted on the clicks, the repeat
    parts, alone too (the rest of the catalogue then ordered by the tie-break term only, the bound's tightest case;
    the zeros signed as the second stage's scaling makes them)."""
    from sessionrec.training.blend import simplex_grid, validation_curve

    _, val, _ = planted
    model = fitted_hybrid(planted)
    grid = [(*u, 0.0, 0.0) for u in simplex_grid(3, 5)] + [(0.3, 0.2, 0.1, a / 5, b / 5) for a in range(3)
                                                             for b in range(3 - a)]
    grid += [(0.0, 0.0, 0.0, 1.0, 0.0), (-0.0, -0.0, -0.0, 0.8, 0.2), (0.0, 0.0, 0.0, 0.0, 1.0)]
    fast = validation_curve(model, val, 64, "expected", torch.device("cpu"), grid, per_part=per_part)
    full = validation_curve(model, val, 64, "expected", torch.device("cpu"), grid, per_part=0)
    assert fast == full and len(set(full.values())) > 5  # the points differ: a real curve


def test_the_sparse_parts_hold_the_dense_parts_values(planted):
    """``part_chunks(sparse=True)`` gives STAN's part and the repeat indicators as ``SparsePart``: the dense parts'
    bits at every product (read by pairs, listed or not, by ``gather``, by rows and made dense), each non-zero entry
    listed once; the networks' parts as without it."""
    from sessionrec.models.hybrid import SparsePart

    _, val, _ = planted
    model = fitted_hybrid(planted)
    batch = val.batch(np.arange(len(val)))
    gen = torch.Generator().manual_seed(0)
    listed = [0, 0, 0]
    with torch.no_grad():
        for (rows, want), (rows2, got) in zip(model.part_chunks(batch, 16), model.part_chunks(batch, 16, sparse=True)):
            assert rows == rows2 and len(got) == len(want) == 5
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
            for m in (2, 3, 4):
                B, N = want[m].shape
                assert isinstance(got[m], SparsePart) and got[m].shape == (B, N)
                assert torch.equal(got[m].key, got[m].key.unique())  # sorted, each entry once
                assert torch.equal(got[m].dense(), want[m]) and torch.equal(got[m][torch.tensor([B - 1, 0])],
                                                                            want[m][[B - 1, 0]])
                key = got[m].key[torch.randperm(len(got[m].key), generator=gen)[:50]]
                r = torch.cat([key // N, torch.randint(0, B, (500,), generator=gen)])
                c = torch.cat([key % N, torch.randint(0, N, (500,), generator=gen)])
                assert torch.equal(got[m][r, c], want[m][r, c])
                index = torch.randint(0, N, (B, 7), generator=gen)
                assert torch.equal(got[m].gather(1, index), want[m].gather(1, index))
                listed[m - 2] += int((want[m] != 0).sum())
    assert all(listed)  # every sparse part has entries


def test_the_sparse_parts_best_items_are_those_of_topk_over_the_whole_row(planted):
    """``blend.best_of_part`` of a ``SparsePart`` (STAN's, the repeat indicators') gives each row the k-th value of
    ``topk`` over the dense part's whole row and the same items above it (rows listing fewer than k entries, and
    more), so ``candidate_counts`` counts and decides every pair from the sparse parts as from the dense ones."""
    from sessionrec.training.blend import best_of_part, candidate_counts, simplex_grid

    _, val, _ = planted
    model = fitted_hybrid(planted)
    batch = val.batch(np.arange(len(val)))
    ws = torch.tensor([(*u, a, b) for u in simplex_grid(3, 2) for a, b in ((0, 0), (0.2, 0.1))], dtype=torch.float64)
    ws[len(ws) // 2:, :3] *= 0.7
    sizes = []
    with torch.no_grad():
        for (rows, dense), (_, sparse) in zip(model.part_chunks(batch, 16), model.part_chunks(batch, 16, sparse=True)):
            dense, sparse = [dense[m] for m in range(5)], [sparse[m] for m in range(5)]
            for k in (1, 3, 8, 32):
                for m in (2, 3, 4):
                    top, fast = dense[m][:, 1:].topk(k, dim=1), best_of_part(sparse[m], k)
                    assert torch.equal(fast[0][:, -1], top.values[:, -1])
                    kth = top.values[:, -1:]
                    for r in range(len(kth)):
                        assert (set(fast[1][r][fast[0][r] > kth[r]].tolist())
                                == set(top.indices[r][top.values[r] > kth[r]].tolist()))
                    sizes += ((sparse[m].key // sparse[m].shape[1]).bincount(minlength=len(kth)) >= k).tolist()
                target = batch.target[rows]
                want = candidate_counts(model, torch.stack(dense), target, ws, k)
                got = candidate_counts(model, sparse, target, ws, k)
                assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert any(sizes) and not all(sizes)  # rows listing k entries or more, and fewer


@pytest.mark.parametrize("m", [1, 2, 3])
def test_hybrid_tie_term_is_the_networks_mean_and_leaves_them_untouched(m):
    """``Hybrid.tie_term`` sums in place after its first sum: it must equal ``TIE`` times the plain mean, bit for bit,
    from a list or a stacked tensor, and never write into the probabilities it is given (the pooling takes their
    logs afterwards)."""
    from sessionrec.models.hybrid import TIE, Hybrid

    torch.manual_seed(m)
    probs = torch.softmax(torch.randn(m, 4, 50, dtype=torch.float64), dim=-1)
    kept = probs.clone()
    total = probs[0]
    for p in probs[1:]:
        total = total + p
    expected = TIE * (total / m)
    assert torch.equal(Hybrid.tie_term(list(probs)), expected)
    assert torch.equal(Hybrid.tie_term(probs), expected)
    assert torch.equal(probs, kept)


@pytest.mark.parametrize("weights", [(0.2, 0.3, 0.1, 0.25, 0.15), (0.0, 0.6, 0.4, 0.0, 0.0), (0.5, 0.0, 0.0, 0.0, 0.5),
                                     (-0.0, -0.0, -0.0, 0.8, 0.2), (0.0, 0.0, 1.0, 0.0, 0.0)])
def test_hybrid_scores_are_the_pooled_parts_bit_for_bit_whichever_weights_are_zero(planted, weights):
    """``Hybrid.forward`` leaves out the parts of weight 0 (their logs, STAN, the repeat indicators): its scores are
    ``pool(*pool_inputs(parts))``'s, the weight search's reference, bit for bit."""
    _, _, test = planted
    model = fitted_hybrid(planted, weights)
    batch = test.batch(np.arange(len(test)))
    with torch.no_grad():
        want = model.pool(*model.pool_inputs(model.parts(batch)), model.weights)
        assert torch.equal(model(batch), want)
    assert torch.isfinite(want[:, 1:]).all() and len(want.unique()) > 100


def test_hybrid_scores_in_chunks_what_it_scores_whole(planted, monkeypatch):
    """``Hybrid.score_chunks`` (how evaluation and validation read it): chunks of 2 rows are the whole batch's rows
    bit for bit; with the networks' matmul also in spans of 4 rows (into reused buffers, ``addmm`` for a bias: other
    rounding) the same to float rounding and the same top 10; the weight search's parts likewise."""
    from sessionrec import scoring

    _, _, test = planted
    model = fitted_hybrid(planted, (0.2, 0.0, 0.1, 0.4, 0.3))
    batch = test.batch(np.arange(17))
    with torch.no_grad():
        whole, parts = model(batch), model.parts(batch)
        chunks = list(model.score_chunks(batch, 2))
        assert [r.stop - r.start for r, _ in chunks] == [2] * 8 + [1]
        assert torch.equal(torch.cat([s for _, s in chunks]), whole)
        monkeypatch.setattr(scoring, "MATMUL_BUDGET", 8 * (N_ITEMS + 1))  # 8 rows: 4 per network
        buffers = {}
        spans = torch.cat([s for _, s in model.score_chunks(batch, 2, buffers)])
        assert sorted(buffers) == ["hybrid-0", "hybrid-1"] and buffers["hybrid-0"].shape[0] == 4
        torch.testing.assert_close(spans, whole, rtol=1e-5, atol=1e-5)
        assert torch.equal(spans.topk(10).indices, whole.topk(10).indices)
        stacked = torch.cat([torch.stack([p[m] for m in range(5)], dim=0)
                             for _, p in model.part_chunks(batch, 2, {})], dim=1)
        torch.testing.assert_close(stacked, parts, rtol=1e-5, atol=1e-7)
        assert torch.equal(stacked[2:], parts[2:])  # STAN and the repeat indicators exactly


@pytest.mark.parametrize("step, fine", [(2, 1), (5, 2), (17, 4)])
def test_hybrid_pools_a_few_rows_at_a_time_and_yields_the_same_chunks_bit_for_bit(planted, monkeypatch, step, fine):
    """With ``POOL_BUDGET`` under a chunk's rows (as at 200k products: 2 rows of 10), ``score_chunks`` pools ``fine``
    rows at a time into one reused buffer and still yields chunks of ``step`` rows, each the whole batch's rows bit for
    bit, every part and the repeat indicators included; the buffer is reused, not made per chunk."""
    from sessionrec.models import hybrid

    _, _, test = planted
    model = fitted_hybrid(planted, (0.2, 0.1, 0.3, 0.25, 0.15))
    batch = test.batch(np.arange(17))
    with torch.no_grad():
        whole = model(batch)
        monkeypatch.setattr(hybrid, "POOL_BUDGET", fine * (N_ITEMS + 1))
        assert hybrid.pool_rows(N_ITEMS + 1, step) == fine
        assert hybrid.pool_rows(N_ITEMS + 1, step, torch.device("cuda")) == step  # a GPU pools whole chunks
        seen = [r.stop - r.start for r, _ in model.part_chunks(batch, step, fine=fine)]
        assert max(seen) == fine and sum(seen) == 17
        buffers = {}
        chunks = [(r, s.clone(), s.data_ptr()) for r, s in model.score_chunks(batch, step, buffers)]
    assert [r.stop - r.start for r, _, _ in chunks] == [step] * (17 // step) + [17 % step] * (17 % step > 0)
    assert torch.equal(torch.cat([s for _, s, _ in chunks]), whole)
    assert buffers["hybrid-pool"].dtype == torch.float64 and len({p for _, _, p in chunks}) == 1


def test_a_seeded_test_sample_scores_its_examples_as_the_whole_split_does(planted, tmp_path):
    """``evaluate.test_examples``: the sample's metrics are the whole split's per-example values at the sampled
    examples, averaged; the same sample every time; ``sampled_from`` and standard errors only when sampled."""
    from quality import planted_store
    from sessionrec.scoring import evaluate_test, sample_test

    model = fitted_hybrid(planted, (0.2, 0.3, 0.1, 0.25, 0.15))
    args = ([1, 20], "expected", 16, torch.device("cpu"), N_ITEMS + 1)
    with torch.no_grad():
        whole, per_example = evaluate_test(model, planted_store(tmp_path / "test.lmdb", 60, 3)[0], *args)
        store = planted_store(tmp_path / "again.lmdb", 60, 3)[0]
        assert sample_test(store, 0) == len(store) and evaluate_test(model, store, *args, len(store))[0] == whole
        total = sample_test(store, 50)
        sample, _ = evaluate_test(model, store, *args, total)
    picked = store.index
    assert total == whole["examples"] > len(picked) == sample["examples"] == 50 and sample["sampled_from"] == total
    assert picked.tolist() == sorted(set(picked.tolist()))
    third = planted_store(tmp_path / "third.lmdb", 60, 3)[0]
    sample_test(third, 50)
    assert third.index.tolist() == picked.tolist()
    for k in ("R@20", "MRR@20", "NDCG@1"):
        assert sample[k] == pytest.approx(per_example[k][picked].mean(), abs=1e-6)
        assert sample[f"{k}_se"] == pytest.approx(per_example[k][picked].std(ddof=1) / 50 ** 0.5, abs=1e-6)
    assert "sampled_from" not in whole and "R@20_se" not in whole


def test_hybrid_hears_stan_for_a_session_years_after_its_training_data(planted):
    """Served years after its data, STAN's scores are about e^-50 of their size (``SessionKNN._decay_from``); the
    hybrid's STAN part, each row over its maximum, is still the part at the data's time (a 1e-12 floor under the
    maximum used to make it all 0: STAN silent), in the dense parts and in the sparse pooling alike."""
    import dataclasses

    _, _, test = planted
    model = fitted_hybrid(planted)
    batch = test.batch(np.arange(len(test)))
    later = dataclasses.replace(batch, time=batch.time + 10 * 365 * 86400)
    stan = len(model.nets)
    with torch.no_grad():
        now, then = model.parts(batch)[stan], model.parts(later)[stan]
    heard = now.amax(1) == 1
    assert heard.float().mean() > 0.9 and torch.equal(then.amax(1) == 1, heard)
    torch.testing.assert_close(then, now, rtol=1e-6, atol=1e-7)
    model.weights.copy_(torch.tensor((0.2, 0.1, 0.4, 0.2, 0.1), dtype=torch.float64))  # STAN weighed in
    with torch.no_grad():  # evaluation's sparse pooling of STAN (add_stan) hears it too: the dense pooling's bits
        assert torch.equal(model(later), model.pool(*model.pool_inputs(model.parts(later)), model.weights))


def test_hybrid_repeat_parts_lift_the_sessions_own_items_when_validation_says_so(tmp_path):
    """Sessions ``a b a``: the weights chosen on validation put more mass on the earlier-clicks indicator than on
    the last click's, and only with the repeat parts is validation near perfect."""
    assert_within_bounds("hybrid_repeat_parts", CHECKS["hybrid_repeat_parts"](0, tmp_path))


def test_hybrid_repeat_parts_are_the_last_click_and_the_earlier_ones(tmp_path):
    test, _ = repeat_store(tmp_path / "t.lmdb", 3, 0)
    batch = test.batch(np.arange(3))
    parts = build_model(config("hybrid", hybrid_nets=["gru4rec"])).parts(batch)[-2:]
    assert parts.shape == (2, 3, N_ITEMS + 1) and (parts.sum(-1) == 1).all()  # exactly b, then exactly a
    last = batch.item[batch.last]
    assert (parts[0].argmax(-1) == last).all() and (parts[1].argmax(-1) != last).all()


def test_pop_ranks_by_training_frequency(planted):
    _, _, test = planted
    model = build_model({"name": "pop", "n_items": 6})
    model.fit_events(np.zeros(7, int), np.array([3, 3, 3, 5, 5, 1, 2]), np.zeros(7, int))
    scores = model(test.batch(np.arange(3)))
    order = torch.argsort(scores[:, 1:], dim=1, descending=True, stable=True) + 1
    assert (order == torch.tensor([3, 5, 1, 2, 4])).all()  # the same list for every session
    assert (scores[:, 4] == 0).all()  # never clicked in training


def test_srgnn_adjacency_is_the_papers_worked_example(tmp_path):
    """Wu et al. 2019, Fig. 2: session v1 v2 v3 v2 v4; A_out rows normalised by out-degree, A_in by in-degree."""
    g = session_graph([1, 2, 3, 2, 4])
    a_out = np.zeros((4, 4))
    a_in = np.zeros((4, 4))
    a_out[g.src, g.dst] = g.w_out  # A_out[i, j] for the edge i -> j
    a_in[g.dst, g.src] = g.w_in  # A_in[j, i] for the edge i -> j
    np.testing.assert_allclose(a_out, [[0, 1, 0, 0], [0, 0, .5, .5], [0, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(a_in, [[0, 0, 0, 0], [.5, 0, .5, 0], [0, 1, 0, 0], [0, 1, 0, 0]])

    # the model's sparse aggregation equals the dense A [W v + b] + b' of the official code
    store, _ = session_store(tmp_path / "s.lmdb", np.zeros(6, int), [1, 2, 3, 2, 4, 9], "last")
    batch = store.batch(np.array([0]))
    torch.manual_seed(0)
    model = SRGNN(n_items=10, hidden_dim=8)
    v = torch.randn(4, 8)
    a_in_model, a_out_model = model.cell.aggregate(v, batch.edge_index, batch.w_in, batch.w_out)
    A_in, A_out = torch.tensor(a_in, dtype=torch.float32), torch.tensor(a_out, dtype=torch.float32)
    torch.testing.assert_close(a_in_model, A_in @ model.cell.edge_in(v) + model.cell.b_iah)
    torch.testing.assert_close(a_out_model, A_out @ model.cell.edge_out(v) + model.cell.b_oah)


def test_dropout_drops_at_rate_p_keeps_the_expectation_and_repeats_with_the_seed():
    from sessionrec.models.layers import Dropout

    drop = Dropout(0.2).train()
    x = torch.ones(500, 384)
    torch.manual_seed(0)
    y = drop(x)
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # same seed, same mask
    dropped = (y == 0).float()
    assert abs(float(dropped.mean()) - 0.2) < 0.005  # 192,000 draws: 4 standard deviations is 0.004
    assert abs(float(dropped.mean(0).std()) - (0.2 * 0.8 / 500) ** 0.5) < 0.006  # independent columns
    assert abs(float(y.mean()) - 1.0) < 0.01  # inverted dropout keeps the mean
    assert torch.equal(torch.unique(y), torch.tensor([0.0, 65536 / (65536 - 13107)]))  # q = 13107 / 65536
    x.requires_grad_(True)
    torch.manual_seed(1)
    out = drop(x)
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())  # d out / d x is the scaled keep mask
    assert torch.equal(drop.eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(0.999995)



def test_a_model_config_holds_exactly_its_constructors_arguments():
    """No model swallows keyword arguments: a misspelled or foreign key in a config (a checkpoint's, say) fails."""
    cfg = config("gru4rec")
    assert set(cfg) == {"name", "n_items", "hidden_dim", "dropout_rate"}
    build_model(cfg)
    with pytest.raises(TypeError, match="hiden_dim"):
        build_model({**cfg, "hiden_dim": 8})
    hybrid = config("hybrid")
    assert list(hybrid["nets"]) == ["gru4rec", "srgnn"] and set(hybrid["stan"]) == {
        "knn_k", "knn_sample_size", "stan_lambda_spw", "stan_lambda_snh", "stan_lambda_inh"}
