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
