"""The models: ``KINDS`` names every model and says how it learns; ``REGISTRY`` maps each name to its class.

Every model follows one small contract: ``forward(batch) -> (B, N)`` catalogue scores (padding id 0 at -inf), an
attribute ``n_items`` (N, padding included), ``explain(batch, items)`` (its own account of an answer: ``{"what",
"clicks": (B, L) per-click weights or None, "parts": the hybrid's per-part contributions to the scores of ``items`` or
None}``, used by the service), and a class attribute ``kind``, one of the three below. The networks and popularity
also split ``forward = score(encode(batch))`` into ``encode(batch) -> (B, d)`` session vectors and ``score(h) -> (B,
N)``, which lets scoring make a large catalogue's scores in row chunks (``sessionrec.scoring``); the networks also
give ``score_items(h, items) -> (B, K)``, the scores of chosen items only (the sampled loss, ``training.loss``).

- ``network``: trained by gradient in the one training loop (``training.loop.fit``);
- ``clicks``: fitted on the training clicks, ``fit_events(session, item, ts)`` (numpy arrays sorted by session, then
  time): popularity and session-kNN;
- ``composite``: separately trained networks and a click-fitted part, blended with weights chosen on validation:
  the hybrid (``load_nets``, ``fit_events``, ``parts`` / ``pool_inputs`` / ``pool`` and a ``weights`` buffer, which
  ``training.blend.choose_weights`` sets).

``training.loop.fit(model, ...)`` dispatches on the kind; besides it, only the code that trains a composite's
networks first (``training.run``) and names its files (``paths``, the benchmark stage) asks ``KINDS``.

``KINDS`` is torch-free, so validating ``params.yaml`` (``sessionrec.params``) never imports torch; ``REGISTRY`` and
``build_model`` are loaded on first use (``sessionrec.models.registry``), which checks that the two agree.
"""

NETWORK, CLICKS, COMPOSITE = "network", "clicks", "composite"

KINDS = {
    "pop": CLICKS,
    "sknn": CLICKS,
    "vsknn": CLICKS,
    "stan": CLICKS,
    "gru4rec": NETWORK,
    "srgnn": NETWORK,
    "hybrid": COMPOSITE,
    "graph_with_embeddings": NETWORK,
    "graph_with_embeddings_and_attention": NETWORK,
    "graph_with_embeddings_and_attentional_aggregation": NETWORK,
}


def names(*kinds: str) -> list[str]:
    """The model names of the given kinds, in registry order."""
    return [n for n, k in KINDS.items() if k in kinds]


def __getattr__(attr: str):
    if attr in ("REGISTRY", "build_model"):
        from sessionrec.models import registry

        return getattr(registry, attr)
    raise AttributeError(f"module 'sessionrec.models' has no attribute {attr!r}")
