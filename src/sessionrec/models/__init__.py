"""Model registry: a plain dict from ``model.name`` to class. Every model follows one small contract:
``encode(batch) -> (B, d)`` session vectors, ``score(h) -> (B, N)`` catalogue scores (padding id 0 at -inf),
``forward(batch) = score(encode(batch))``, and a class attribute ``trainable``. Models that are not trained by
gradient (``trainable = False``: popularity, session-kNN) have ``fit_events(session, item, ts)`` instead, called
with the training clicks (numpy arrays sorted by session, then time); the session-kNN family scores in ``forward``."""

from sessionrec.models.graph_embeddings import (
    GraphWithEmbeddings,
    GraphWithEmbeddingsAndAttention,
    GraphWithEmbeddingsAndAttentionalAggregation,
)
from sessionrec.models.gru4rec import GRU4Rec
from sessionrec.models.hybrid import Hybrid
from sessionrec.models.knn import SKNN, STAN, VSKNN
from sessionrec.models.pop import Popularity
from sessionrec.models.srgnn import SRGNN

REGISTRY = {
    "pop": Popularity,
    "sknn": SKNN,
    "vsknn": VSKNN,
    "stan": STAN,
    "gru4rec": GRU4Rec,
    "srgnn": SRGNN,
    "hybrid": Hybrid,
    "graph_with_embeddings": GraphWithEmbeddings,
    "graph_with_embeddings_and_attention": GraphWithEmbeddingsAndAttention,
    "graph_with_embeddings_and_attentional_aggregation": GraphWithEmbeddingsAndAttentionalAggregation,
}


def build_model(config: dict):
    """Rebuild a model from the config dict stored in its checkpoint."""
    name = config["name"]
    if name not in REGISTRY:
        raise ValueError(f"model.name: unknown model {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name](**{k: v for k, v in config.items() if k != "name"})
