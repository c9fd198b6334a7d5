"""``REGISTRY``: a plain dict from ``model.name`` to class; ``model_config`` writes the config a checkpoint stores and
``build_model`` rebuilds the model from it."""

import inspect

from sessionrec.models import COMPOSITE, KINDS
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


def constructor_args(cls) -> list[str]:
    """The keyword arguments of ``cls`` besides ``n_items``: what its config holds (no ``**kwargs`` anywhere, so a
    misspelled or foreign key fails when the model is built)."""
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "n_items")]


def model_config(name: str, n_items: int, knobs: dict) -> dict:
    """The config of model ``name``: ``name``, ``n_items`` and exactly its constructor's arguments, taken by name
    from ``knobs`` (the ``model.*`` params and the split's ``vocab_sizes``). The hybrid's holds one such set per
    network of ``knobs["hybrid_nets"]`` and STAN's."""
    def args(cls):
        return {k: knobs[k] for k in constructor_args(cls)}

    if KINDS[name] == COMPOSITE:
        return {"name": name, "n_items": n_items, "nets": {n: args(REGISTRY[n]) for n in knobs["hybrid_nets"]},
                "stan": args(STAN)}
    return {"name": name, "n_items": n_items, **args(REGISTRY[name])}


def build_model(config: dict):
    """Rebuild a model from the config dict stored in its checkpoint (its name was validated with the params)."""
    name = config["name"]
    if name not in REGISTRY:  # a checkpoint from elsewhere: the one boundary besides params.yaml
        raise ValueError(f"model.name: unknown model {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name](**{k: v for k, v in config.items() if k != "name"})
