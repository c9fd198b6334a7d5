"""The sampled training loss (``sessionrec.training.loss``): what it draws, what it masks, what it corrects. Whether a
network still learns with it is a quality check in ``quality.py`` (``sampled_planted_map``)."""

import math

import numpy as np
import pytest
import torch

from sessionrec.training.loss import SampledSoftmax, make_loss


@pytest.mark.parametrize("alpha, expected", [(0.5, [0, 0, 1 / 6, 2 / 6, 3 / 6]), (0.0, [0, 0, 1 / 3, 1 / 3, 1 / 3])])
def test_negatives_are_drawn_by_popularity_to_the_alpha_and_never_padding_or_unclicked(alpha, expected):
    loss = SampledSoftmax(np.array([5, 0, 1, 4, 9]), n_sample=8, sample_alpha=alpha, logq=1.0)  # padding's count ignored
    torch.manual_seed(0)
    freq = np.bincount(loss.draw(60_000, "cpu").numpy(), minlength=5) / 60_000
    assert freq[0] == 0 and freq[1] == 0
    assert np.allclose(freq, expected, atol=0.01), freq


class Fixed(torch.nn.Module):
    """A 'network' whose logits are a fixed score per product, the same for every session."""

    def __init__(self, item_scores):
        super().__init__()
        self.s = torch.tensor(item_scores, dtype=torch.float32)

    def encode(self, batch):
        return torch.zeros(batch.target.shape[0], 1)

    def score_items(self, h, items):
        return self.s[items].expand(h.shape[0], -1)


class FakeBatch:
    def __init__(self, target):
        self.target = torch.tensor(target)


@pytest.mark.parametrize("logq", [0.0, 1.0])
def test_loss_masks_accidental_hits_and_subtracts_log_q(logq):
    counts = np.array([0, 1, 2, 3, 6])
    item_scores = [0.0, 0.3, -0.2, 0.5, 0.1]
    loss = SampledSoftmax(counts, n_sample=5, sample_alpha=0.5, logq=logq)
    target = [2, 2, 4]
    torch.manual_seed(1)
    got = float(loss(Fixed(item_scores), FakeBatch(target)))
    torch.manual_seed(1)
    sampled = loss.draw(5, "cpu").tolist()
    p0 = counts / counts.sum()
    cand = target + sampled
    expected = 0.0
    for b, y in enumerate(target):  # by hand: row b's own column, every candidate that is not its target elsewhere
        def logit(j, c):
            q = p0[c] if j < len(target) else p0[c] ** 0.5
            return item_scores[c] - logq * math.log(q)
        cols = [logit(j, c) for j, c in enumerate(cand) if j == b or c != y]
        expected += -(logit(b, y) - math.log(sum(math.exp(v) for v in cols)))
    assert got == pytest.approx(expected / len(target), rel=1e-5)


def test_sampled_loss_needs_training_clicks_and_a_known_kind():
    with pytest.raises(ValueError, match="training clicks"):
        make_loss("sampled", 5, None, 8, 0.5, 1.0)
    with pytest.raises(ValueError, match="model.loss"):
        make_loss("bpr", 5, np.array([1, 2]), 8, 0.5, 1.0)


def lazy_setup(tmp_path, name):
    from conftest import planted_store
    from quality import config
    from sessionrec.training.loop import make_optimizer, new_model

    store, events = planted_store(tmp_path / "train.lmdb", 40, 1)
    batches = [store.batch(np.arange(i, i + 16)) for i in (0, 16)]
    loss = make_loss("sampled", 61, events["item"], n_sample=4, sample_alpha=0.5, logq=1.0)

    def trained(kind, state=None, steps=(0,)):
        model = new_model(config(name), 0)
        opt = make_optimizer(model, 0.01, 0.0, kind)
        if state is not None:
            model.load_state_dict(state[0])
            opt.load_state_dict(state[1])
        for i in steps:
            torch.manual_seed(i)
            opt.zero_grad()
            loss(model, batches[i]).backward()
            opt.step()
        return model, opt
    return trained


@pytest.mark.parametrize("name", ["gru4rec", "graph_with_embeddings_and_attention"])
def test_lazy_adam_moves_only_the_rows_a_batch_touched_and_resumes_exactly(tmp_path, name):
    """One step from the same weights: the product table's gradient is sparse, every row it does not name keeps its
    weights and zero moments, and (first step, no L2) every weight equals dense Adam's where the gradient is clear of
    rounding noise. Then its state saved and
    loaded gives the same next step as an uninterrupted run."""
    trained = lazy_setup(tmp_path, name)
    start = trained("adam", steps=())[0].state_dict()
    dense, _ = trained("adam")
    lazy, opt = trained("lazy_adam")
    table = lazy.output_layer()[0]
    assert table.grad.is_sparse
    touched = table.grad.coalesce().indices()[0]
    untouched = torch.ones(len(table), dtype=torch.bool)
    untouched[touched] = False
    key = next(k for k, p in lazy.named_parameters() if p is table)
    assert 0 < len(touched) < len(table) // 2
    assert torch.equal(table.detach()[untouched], start[key][untouched])
    assert not bool((table.detach()[touched] == start[key][touched]).all(dim=1).any())
    assert float(opt.table.state[table]["exp_avg"][untouched].abs().max()) == 0.0
    for (k, p), q in zip(lazy.named_parameters(), dense.parameters()):
        if p is not table:  # fused Adam in both
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=k)
    # The table's first step is lr * g / (|g| + eps'): compare where g is far above eps' (SparseAdam adds eps before
    # the bias correction, 3.2e-7 at step 1; Adam after it) and rounding noise.
    g = dense.output_layer()[0].grad
    clear = g.abs() > 1e-4
    assert int(clear.sum()) >= 0.5 * int((g != 0).sum())
    torch.testing.assert_close(table.detach()[clear], dense.output_layer()[0].detach()[clear], rtol=5e-3, atol=1e-6)

    straight, _ = trained("lazy_adam", steps=(0, 1))
    resumed, _ = trained("lazy_adam", state=(lazy.state_dict(), opt.state_dict()), steps=(1,))
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_lazy_adam_learning_rate_schedule_sets_both_parts(tmp_path):
    trained = lazy_setup(tmp_path, "gru4rec")
    _, opt = trained("lazy_adam")
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=0)
    sched.step(1.0)
    sched.step(2.0)
    assert [g["lr"] for g in opt.dense.param_groups + opt.table.param_groups] == pytest.approx([0.001, 0.001])
