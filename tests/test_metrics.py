import math

import pytest
import torch

from sessionrec.metrics import TOP_BLOCK, RankingMetrics, metrics_from_counts, rank_counts, top_n


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


@pytest.mark.parametrize("levels", [3, 50, 10_000])  # few distinct scores (long tie groups) .. almost none tied
def test_top_k_counts_give_the_full_comparison_metrics(levels):
    """The one top-K pass (``within``, what evaluation uses) and two full comparisons give the same metrics at every
    cut-off within K, under every tie rule, including tie groups that straddle the K-th place."""
    gen = torch.Generator().manual_seed(levels)
    scores = torch.randint(0, levels, (300, 501), generator=gen).double()
    target = torch.randint(1, 501, (300,), generator=gen)
    for ties in ("expected", "pessimistic", "optimistic"):
        full = metrics_from_counts(*rank_counts(scores, target), [1, 5, 10, 20], ties)
        fast = metrics_from_counts(*rank_counts(scores, target, within=20), [1, 5, 10, 20], ties)
        for k in full:
            assert torch.equal(full[k], fast[k]), (ties, k)
    g, _ = rank_counts(scores, target, within=20)
    assert (g == 20).any() and (g < 20).any()  # both branches ran


def test_accumulator_matches_full_comparisons_on_chunks():
    """``RankingMetrics.update`` (top-K counts) on row chunks equals the per-example full comparison."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 20, (64, 301), generator=gen).float()
    target = torch.randint(1, 301, (64,), generator=gen)
    acc = RankingMetrics([1, 5, 20], n_items=301)
    for r0 in range(0, 64, 10):
        acc.update(scores[r0:r0 + 10], target[r0:r0 + 10])
    full = metrics_from_counts(*rank_counts(scores, target), [1, 5, 20])
    got = acc.result()
    for k, v in full.items():
        assert got[k] == pytest.approx(float(v.mean()), abs=1e-12), k


@pytest.mark.parametrize("levels", [None, 3, 50])
def test_top_n_by_blocks_equals_topk(levels, monkeypatch):
    """``top_n`` (the largest values from the rows' best blocks) gives ``topk``'s values and indices, on a catalogue
    whose last block is short, with rows whose best values sit in one block, and with ties (continuous scores: none;
    3 or 50 levels: ties in most or some rows, which go to ``topk`` whole). Without ties only the rows with a tie or
    a NaN reach ``topk`` at full width, so the blocks' way is what was checked."""
    gen = torch.Generator().manual_seed(1)
    n_cols = 40 * TOP_BLOCK * 21 + 37  # the blocks' way (over 8 x 21 blocks), plus a short last block
    scores = torch.randn(24, n_cols, generator=gen)
    if levels is not None:
        scores = (scores * levels / 8).round()
    scores[0, -5:] = 100.0  # the best values in the short last block
    scores[1, 256:276] = 50.0 + torch.arange(20.0)  # all of a row's best in one block ...
    scores[2, :] = 0.0  # ... and a row of one value throughout
    scores[3, 7] = float("nan")
    full_width_rows = []
    topk = torch.Tensor.topk

    def counted(self, *args, **kwargs):
        if self.shape[-1] == n_cols:
            full_width_rows.append(self.shape[0])
        return topk(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "topk", counted)
    for n in (1, 20, 21):
        values, indices = top_n(scores, n)
        monkeypatch.setattr(torch.Tensor, "topk", topk)
        ref = scores.topk(n, dim=1)
        monkeypatch.setattr(torch.Tensor, "topk", counted)
        assert torch.equal(values.nan_to_num(-1.0), ref.values.nan_to_num(-1.0)), n
        assert torch.equal(indices, ref.indices), n
    if levels is None:  # the tied rows (five 100s, one value throughout) and the NaN row only
        assert full_width_rows and max(full_width_rows) <= 3, full_width_rows
