"""``REGISTRY``: a plain dict from ``model.name`` to class, and ``build_model`` to rebuild one from a config dict."""

from sessionrec.models import KINDS
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
assert {n: c.kind for n, c in REGISTRY.items()} == KINDS, "models.KINDS and models.registry.REGISTRY disagree"


def build_model(config: dict):
    """Rebuild a model from the config dict stored in its checkpoint (its name was validated with the params)."""
    name = config["name"]
    if name not in REGISTRY:  # a checkpoint from elsewhere: the one boundary besides params.yaml
        raise ValueError(f"model.name: unknown model {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name](**{k: v for k, v in config.items() if k != "name"})
