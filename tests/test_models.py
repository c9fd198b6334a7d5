"""Every registered model: output shape and padding masked; each learns a planted pattern beyond popularity (pop ranks
by train frequency); SR-GNN's in/out adjacency against the paper's worked example."""

import numpy as np
import pytest
import torch

from conftest import N_ITEMS, planted_store, session_store
from sessionrec.graphs.build import session_graph
from sessionrec.models import REGISTRY, build_model
from sessionrec.models.srgnn import SRGNN
from sessionrec.training.loop import TrainConfig, fit, fit_blend, score_store

VOCAB = {"category": 2, "sub_category": 2, "element": 2, "brand": 2}
NEURAL = sorted(name for name, cls in REGISTRY.items() if cls.trainable)


def config(name, n_items=N_ITEMS + 1):
    return {"name": name, "n_items": n_items, "vocab_sizes": VOCAB, "embedding_dim": 32, "hidden_dim": 32,
            "num_iterations": 1, "dropout_rate": 0.0}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    return planted_store(d / "train.lmdb", 400, 1), planted_store(d / "val.lmdb", 60, 2)[0], \
        planted_store(d / "test.lmdb", 60, 3)[0]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_scores_cover_the_catalogue_and_never_padding(planted, name):
    (train, events), _, test = planted
    model = build_model(config(name))
    if hasattr(model, "fit_events"):
        model.fit_events(events["session"], events["item"], events["ts"])
    model.eval()
    batch = test.batch(np.arange(17))
    with torch.no_grad():
        scores = model(batch)
    assert scores.shape == (17, N_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    assert (torch.topk(scores, N_ITEMS).indices != 0).all()


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("name", NEURAL)
def test_neural_model_learns_a_planted_successor_map(planted, name, dropout):
    (train, events), val, test = planted
    cfg = TrainConfig(lr=0.01, weight_decay=0.0, batch_size=64, epochs=10, use_scheduler=False, patience=3, seed=0)
    state, _, _, _ = fit({**config(name), "dropout_rate": dropout}, train, val, cfg, train_events=events)
    model = build_model(config(name))
    model.load_state_dict(state)
    _, acc = score_store(model, test, 256, [1, 20], "expected", "cpu")
    assert acc.result()["R@1"] > 0.9, (name, acc.result())  # popularity: about 1 / 60 (every item equally popular)


def test_hybrid_learns_the_planted_map_from_its_networks_and_weights_chosen_on_validation(planted):
    """A trained GRU4Rec, an untrained SR-GNN and STAN: the weights are the best point of the validation curve, on
    which the untrained network alone scores poorly, and the blend learns the planted map."""
    (train, events), val, test = planted
    cfg = TrainConfig(lr=0.01, weight_decay=0.0, batch_size=64, epochs=10, use_scheduler=False, patience=3, seed=0)
    gru, _, _, _ = fit(config("gru4rec"), train, val, cfg)
    untrained = build_model(config("srgnn")).state_dict()
    hcfg = {**config("hybrid"), "hybrid_nets": ["gru4rec", "srgnn"]}
    state, metrics, curve = fit_blend(hcfg, {"gru4rec": gru, "srgnn": untrained}, val, cfg, events)
    model = build_model(hcfg)
    model.load_state_dict(state)
    w = model.weights.tolist()
    assert model.part_names == ["gru4rec", "srgnn", "stan", "repeat_last", "repeat_earlier"]
    assert len(curve) == 66 + 65 and abs(sum(w) - 1) < 1e-9  # the 3-part grid, then 66 repeat mixes (one shared)
    assert curve[tuple(w)] == max(curve.values()) and metrics["MRR@20"] == pytest.approx(curve[tuple(w)])
    assert curve[(0.0, 1.0, 0.0, 0.0, 0.0)] < 0.5 * max(curve.values())  # the untrained network alone is poor
    _, acc = score_store(model, test, 256, [1, 20], "expected", "cpu")
    assert acc.result()["R@1"] > 0.9, (w, acc.result())
    with pytest.raises(ValueError, match="trained one by one"):
        fit(hcfg, train, val, cfg, train_events=events)


def repeat_store(path, n_sessions, seed):
    """Sessions ``a b a``: the target is the session's earlier click, never its last one; items drawn at random."""
    rng = np.random.default_rng(seed)
    items = np.concatenate([rng.choice(np.arange(1, N_ITEMS + 1), 2, replace=False)[[0, 1, 0]]
                            for _ in range(n_sessions)])
    return session_store(path, np.repeat(np.arange(n_sessions), 3), items, "last")


def test_hybrid_repeat_parts_lift_the_sessions_own_items_when_validation_says_so(tmp_path):
    """Untrained networks and STAN cannot know that the target is the session's earlier click; the repeat parts can,
    and the weights chosen on validation put more mass on the earlier-clicks indicator than on the last click's."""
    (_, events), (val, _), (test, _) = (repeat_store(tmp_path / f"{s}.lmdb", 200, i)
                                        for i, s in enumerate(("train", "val", "test")))
    hcfg = {**config("hybrid"), "hybrid_nets": ["gru4rec"]}
    cfg = TrainConfig(lr=0.01, weight_decay=0.0, batch_size=64, epochs=1, use_scheduler=False, patience=1, seed=0)
    state, _, curve = fit_blend(hcfg, {"gru4rec": build_model(config("gru4rec")).state_dict()}, val, cfg, events)
    model = build_model(hcfg)
    model.load_state_dict(state)
    w = dict(zip(model.part_names, model.weights.tolist()))
    assert w["repeat_earlier"] > w["repeat_last"], w
    without = max(v for k, v in curve.items() if k[-2:] == (0.0, 0.0))
    assert without < 0.8 < 0.99 < max(curve.values()), without  # best without the repeat parts, best with
    _, acc = score_store(model, test, 256, [1, 20], "expected", "cpu")
    assert acc.result()["R@1"] > 0.99, (w, acc.result())
    parts = model.repeat_parts(test.batch(np.arange(3)), N_ITEMS + 1)  # (2, B, N): exactly b, then exactly a
    assert parts.shape == (2, 3, N_ITEMS + 1) and (parts.sum(-1) == 1).all()


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

