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

TIE = 1e-9
EPS = 1e-6  # floor of every normalised score before the log
REPEAT_PARTS = ("repeat_last", "repeat_earlier")


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

    @staticmethod
    def repeat_parts(batch: Batch, n_items: int) -> torch.Tensor:
        """(2, B, N) float64: the indicator of the last click, then of the session's other items."""
        B = batch.size
        clicked = torch.zeros(B, n_items, dtype=torch.float64, device=batch.target.device)
        rows = torch.arange(B, device=clicked.device).unsqueeze(1).expand_as(batch.alias)
        clicked[rows[batch.mask], batch.item[batch.alias[batch.mask]]] = 1.0
        last = torch.zeros_like(clicked)
        last[torch.arange(B, device=clicked.device), batch.item[batch.last]] = 1.0
        return torch.stack([last, clicked - last])

    def parts(self, batch: Batch) -> torch.Tensor:
        """(M + 3, B, N) float64: each network's probabilities, STAN's scores over their row maximum, then the
        repeat indicators; 0 at padding."""
        probs = [torch.softmax(net(batch).double(), dim=-1) for net in self.nets]
        return torch.cat([torch.stack([*probs, self.stan_part(batch)]), self.repeat_parts(batch, probs[0].shape[-1])])

    def stan_part(self, batch: Batch) -> torch.Tensor:
        """(B, N) float64: STAN's scores over their row maximum, 0 at padding."""
        k = self.knn(batch).double().clamp_min(0.0)  # padding -inf -> 0
        return k / k.amax(dim=-1, keepdim=True).clamp_min(1e-12)

    @staticmethod
    def pool_inputs(parts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the pooling needs from ``parts`` (M + 3, B, N), once per batch: their logs, and the tie-break term
        (the networks' mean probability). Elementwise, so any selection of items (``parts`` (M + 3, B, C)) gets the
        values the whole catalogue's would have there."""
        nets = parts[:-1 - len(REPEAT_PARTS)]
        total = nets[0]
        for p in nets[1:]:
            total = total + p
        return torch.log(parts + EPS), TIE * (total / len(nets))

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

    def forward(self, batch: Batch) -> torch.Tensor:
        """``pool(*pool_inputs(parts(batch)), weights)`` bit for bit, without what a zero weight leaves out.

        A part of weight 0 adds ``0 * log(p + eps)``, an exact zero (the log is finite), so its log is not taken,
        STAN and the repeat indicators are not made at all, and nothing is stacked; the networks' probabilities are
        all made (the tie-break term averages them). The weights chosen at 126k products leave three of six parts
        out: py-spy gave the logs of all six 28% of a scoring pass and the stacking 16%. Parts at the weights
        they have are summed in part order, as ``weighted_sum`` does (tests/test_models.py compares the two)."""
        w = self.weights
        probs = [torch.softmax(net(batch).double(), dim=-1) for net in self.nets]
        total = probs[0]
        for p in probs[1:]:
            total = total + p
        tie = TIE * (total / len(probs))
        M = len(probs)
        parts = dict(enumerate(probs))
        if w[M] != 0:
            parts[M] = self.stan_part(batch)
        if bool((w[M + 1:] != 0).any()):
            for j, p in enumerate(self.repeat_parts(batch, probs[0].shape[-1])):
                parts[M + 1 + j] = p
        out = None
        for m in range(len(self.part_names)):
            if w[m] != 0:
                term = w[m] * torch.log(parts[m] + EPS)
                out = term if out is None else out + term
        return mask_padding(out + tie)
