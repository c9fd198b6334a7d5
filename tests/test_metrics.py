import math

import pytest
import torch

from sessionrec.metrics import RankingMetrics, metrics_from_counts, rank_counts


def test_rank_counts_ignores_padding_column():
    scores = torch.tensor([[99.0, 0.5, 0.9, 0.5, 0.1]])
    g, e = rank_counts(scores, torch.tensor([1]))
    assert (g.item(), e.item()) == (1, 2)  # 0.9 above; 0.5 tied twice; padding (99) ignored


def test_no_ties_hand_computed():
    # target ranked 3rd of 5
    scores = torch.tensor([[0.0, 0.9, 0.8, 0.7, 0.1, 0.05]])
    m = metrics_from_counts(*rank_counts(scores, torch.tensor([3])), ks=[1, 2, 3, 5])
    assert m["R@1"].item() == 0 and m["R@2"].item() == 0 and m["R@3"].item() == 1
    assert m["MRR@3"].item() == pytest.approx(1 / 3) and m["MRR@2"].item() == 0
    assert m["NDCG@5"].item() == pytest.approx(1 / math.log2(4))


def test_ties_expected_pessimistic_optimistic():
    # g = 1 item above, e = 4 tied (target included): rank uniform on 2..5
    g, e = torch.tensor([1]), torch.tensor([4])
    exp = metrics_from_counts(g, e, [1, 3, 5, 20], "expected")
    assert exp["R@1"].item() == 0
    assert exp["R@3"].item() == pytest.approx(2 / 4)  # ranks 2, 3 of {2,3,4,5}
    assert exp["R@5"].item() == pytest.approx(1.0)
    assert exp["MRR@3"].item() == pytest.approx((1 / 2 + 1 / 3) / 4)
    assert exp["MRR@20"].item() == pytest.approx((1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 4)
    assert exp["NDCG@3"].item() == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 4)
    pes = metrics_from_counts(g, e, [3, 5], "pessimistic")
    assert pes["R@3"].item() == 0 and pes["R@5"].item() == 1 and pes["MRR@5"].item() == pytest.approx(1 / 5)
    opt = metrics_from_counts(g, e, [3], "optimistic")
    assert opt["R@3"].item() == 1 and opt["MRR@3"].item() == pytest.approx(1 / 2)


def test_all_items_tied_matches_random_guess():
    n = 101  # 100 real items + padding
    scores = torch.zeros(1, n)
    m = metrics_from_counts(*rank_counts(scores, torch.tensor([7])), ks=[20])
    assert m["R@20"].item() == pytest.approx(20 / 100)


def test_accumulator_means_and_coverage():
    acc = RankingMetrics([1, 20], n_items=4)
    acc.update(torch.tensor([[0.0, 3.0, 2.0, 1.0]]), torch.tensor([1]))
    acc.update(torch.tensor([[0.0, 3.0, 2.0, 1.0]]), torch.tensor([3]))
    r = acc.result()
    assert r["R@1"] == pytest.approx(0.5) and r["MRR@20"] == pytest.approx((1 + 1 / 3) / 2)
    assert r["coverage@20"] == pytest.approx(1.0)
