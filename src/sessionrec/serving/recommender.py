"""From a live session's clicks to the top-k products: the model the pipeline trained, ranked with the very code that
evaluates it (``load_model``, the graph builder, ``GraphStore`` batching), with popularity fallbacks.

A click names the shop's own ``product_id``. Products the catalogue knows (those of the training split) become the
session the model scores; the others are reported back as unknown. Strategies, in order:

- ``model``: at least one known click: the model's scores over the whole catalogue;
- ``visitor_history``: no known click, and a ``user_id`` with training sessions: products like those the visitor
  viewed before (``serving.history``); the model takes over from the first known click;
- ``category_popularity``: no known click, but the request says the unknown products' category: the most clicked
  training products of that category;
- ``popularity``: otherwise, the most clicked training products.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from sessionrec import paths
from sessionrec.graphs.build import NODE_INT_FEATURES, build_examples
from sessionrec.graphs.store import GraphStore
from sessionrec.serving.history import VisitorHistory
from sessionrec.training.checkpoint import load_model

MODEL, VISITOR_HISTORY = "model", "visitor_history"
POPULARITY, CATEGORY_POPULARITY = "popularity", "category_popularity"


@dataclass(frozen=True)
class Click:
    product_id: int
    event_time: float | None = None  # unix seconds; None = the time of the request
    category: str | None = None  # for a product the catalogue lacks: its category_code (its first level is used)


class Recommender:
    """``model`` scores ``Batch``es over items ``0..N-1`` (0 = padding). ``catalogue``: per item (index = item id)
    the encoded node features the model was trained with (``NODE_INT_FEATURES`` and scaled ``price``) and its
    ``product_id``; ``counts``: training clicks per item; ``display``: per item, what a shop shows (category path,
    brand, price), each a list indexed by item."""

    def __init__(self, model, name: str, catalogue: dict, counts: np.ndarray, display: dict,
                 history: VisitorHistory | None = None):
        self.model, self.name = model.eval(), name
        self.catalogue, self.display = catalogue, display
        self.counts = counts
        self.popularity = np.log1p(counts.astype(np.float64))  # (N,) the fallbacks' scores, computed once
        self.item_of = {int(p): i for i, p in enumerate(catalogue["product_id"]) if i > 0}
        self.n_items, self.history = len(counts), history
        self._lock = threading.Lock()  # one model call at a time: kNN models build an index lazily

    @classmethod
    def from_pipeline(cls, root: Path = Path("."), device: str = "cpu", visitor_history: bool = True) -> "Recommender":
        """The model of ``models/model.pt`` (through ``load_model``, as ``evaluate`` loads it) with the split's
        catalogue and the training clicks (and the visitors' histories, unless ``visitor_history`` is false)."""
        model, ckpt = load_model(root / paths.MODEL, device)
        cat = pq.read_table(root / paths.SPLIT / "catalogue.parquet").to_pydict()
        n = ckpt["config"]["n_items"]
        catalogue = {f: np.zeros(n, np.float32 if f == "price" else np.int64) for f in (*NODE_INT_FEATURES, "price")}
        catalogue["product_id"] = np.zeros(n, np.int64)
        items = np.asarray(cat["item"], np.int64)
        for f in (*NODE_INT_FEATURES[1:], "price", "product_id"):
            catalogue[f][items] = cat[f]
        catalogue["item"] = np.arange(n, dtype=np.int64)
        train = pq.read_table(root / paths.SPLIT / "train.parquet", columns=["session", "item"])
        counts = np.bincount(train.column("item").to_numpy(), minlength=n)[:n]
        events = pq.read_table(root / paths.EVENTS, columns=["session", "user_id", "product_id", "ts", "category",
                                                             "sub_category", "element", "brand", "price"])
        return cls(model, ckpt["config"]["name"], catalogue, counts,
                   product_display(events, root, catalogue["product_id"]),
                   VisitorHistory.from_tables(train, events, n) if visitor_history else None)

    def _batch(self, items: list[int], times: list[float]):
        """The session ``items`` (known item ids, in click order) as a batch of one example."""
        rows = np.asarray([*items, 0], np.int64)  # a placeholder target after the last click: one example, its input
        features = {f: self.catalogue[f][rows] for f in (*NODE_INT_FEATURES, "price")}
        features["ts"] = np.asarray([*times, times[-1]], np.int64)
        example = next(build_examples(np.zeros(len(rows), np.int64), features, "last"))
        return GraphStore.from_examples([example]).batch(np.array([0]))

    def _explain(self, batch, top: list[int], clicks: list[int]) -> dict:
        """The model's own account of its answer (``explain`` of every model, see ``models/__init__``)."""
        with self._lock, torch.inference_mode():
            e = self.model.explain(batch, torch.tensor([top], dtype=torch.int64))
        out = {"what": e["what"], "clicks": None, "parts": None}
        if e["clicks"] is not None:
            w = e["clicks"][0, :len(clicks)].double().cpu().tolist()
            out["clicks"] = [{"product_id": int(self.catalogue["product_id"][i]), "weight": float(x)}
                             for i, x in zip(clicks, w)]
        if e["parts"] is not None:
            out["parts"] = [{"part": name, "weight": weight, "contributions": contrib[0].double().cpu().tolist()}
                            for name, (weight, contrib) in e["parts"].items()]
        return out

    def recommend(self, clicks: list[Click], k: int, exclude_seen: bool = True, explain: bool = False,
                  user_id: int | None = None) -> dict:
        """``{"strategy", "model", "unknown_products", "items": [{product_id, score, rank, **display}]}``, best first;
        with ``explain``, also ``"explanation"``: what the weights are, each known click's weight (attention models),
        each part's weight and contribution to every recommended product's score (the hybrid)."""
        now = time.time()
        known = [(self.item_of[c.product_id], now if c.event_time is None else c.event_time)
                 for c in clicks if c.product_id in self.item_of]
        unknown = list(dict.fromkeys(c.product_id for c in clicks if c.product_id not in self.item_of))
        categories = {c.category.split(".")[0] for c in clicks if c.product_id not in self.item_of and c.category}
        visitor = self.history.scores(user_id) if self.history is not None and not known else None
        if known:
            strategy = MODEL
            batch = self._batch([i for i, _ in known], [t for _, t in known])
            with self._lock, torch.inference_mode():
                scores = self.model(batch)[0].double().cpu().numpy()
        elif visitor is not None:
            strategy, scores = VISITOR_HISTORY, visitor
        elif len(categories) == 1 and (in_cat := self.display["category_top"] == categories.pop()).any():
            strategy = CATEGORY_POPULARITY
            scores = np.where(in_cat, self.popularity, -np.inf)
        else:
            strategy = POPULARITY
            scores = self.popularity.copy()
        scores[0] = -np.inf  # every branch holds its own array here
        if exclude_seen and known:
            scores[[i for i, _ in known]] = -np.inf
        top = top_k(scores, k)
        out = {"strategy": strategy, "model": self.name if strategy == MODEL else None,
               "unknown_products": unknown,
               "items": [{**self.product(i), "rank": r + 1, "score": float(scores[i])} for r, i in enumerate(top)]}
        if explain:
            out["explanation"] = self._explain(batch, top, [i for i, _ in known]) if strategy == MODEL and top else \
                {"what": f"none: answered by {strategy}, not by the model", "clicks": None, "parts": None}
        return out


    def product(self, item: int) -> dict:
        """What a shop shows of one item: its ``product_id``, category path, brand and price."""
        return {"product_id": int(self.catalogue["product_id"][item]), **{f: self.display[f][item] for f in DISPLAY_FIELDS}}

    @functools.cached_property
    def _popular(self) -> np.ndarray:
        """Every item, most clicked in training first (ties by item)."""
        order = np.lexsort((np.arange(self.n_items), -self.popularity))
        return order[order > 0]

    @functools.cached_property
    def _by_category(self) -> dict[str, np.ndarray]:
        """Per top-level category (``""``: none), its items in ``_popular`` order."""
        order = self._popular
        tops = self.display["category_top"][order]
        return {str(c): order[tops == c] for c in dict.fromkeys(tops.tolist())}

    def categories(self) -> list[dict]:
        """The catalogue's top-level categories, the one with the most training clicks first (products without a
        category, ``""``, last)."""
        rows = [{"category": c, "products": len(items), "clicks": int(self.counts[items].sum())}
                for c, items in self._by_category.items()]
        return sorted(rows, key=lambda r: (r["category"] == "", -r["clicks"], r["category"]))

    def products(self, category: str | None, limit: int) -> list[dict] | None:
        """The ``limit`` most clicked products of ``category`` (all products when ``None``); ``None`` for a category
        the catalogue lacks."""
        if category is None:
            items = self._popular
        elif (items := self._by_category.get(category)) is None:
            return None
        return [self.product(int(i)) for i in items[:limit]]


DISPLAY_FIELDS = ("category_code", "brand", "price")


def top_k(scores: np.ndarray, k: int) -> list[int]:
    """The ``k`` best finite scores' indices, by score, ties by index (a stable answer). Partitions first, so only the
    candidates at or above the k-th score are sorted: O(N) instead of a full sort (at 200k products the full sort
    was most of a request's time)."""
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        cand = np.flatnonzero(scores >= kth)
    else:
        cand = np.arange(len(scores))
    order = cand[np.lexsort((cand, -scores[cand]))][:k]
    return [int(i) for i in order if np.isfinite(scores[i])]


def product_display(events, root: Path, product_id: np.ndarray) -> dict:
    """Per item: ``category_code`` (the category path, ``None`` when missing), ``brand`` and the raw ``price``, from
    each product's last event in the filtered ``events`` (a pyarrow table); plus ``category_top`` (the path's first
    level) as an array. Labels from ``data/interim/vocab.parquet`` under ``root``."""
    ev = events.take(pc.sort_indices(events, [("product_id", "ascending"), ("ts", "ascending")]))
    pid = ev.column("product_id").to_numpy()
    last = np.flatnonzero(np.r_[pid[1:] != pid[:-1], True])
    row_of = dict(zip(pid[last].tolist(), last.tolist()))
    vocab = pq.read_table(root / paths.INTERIM / "vocab.parquet").to_pydict()
    label = {(f, c): lab for f, lab, c in zip(vocab["field"], vocab["label"], vocab["code"])}
    cols = {c: ev.column(c).to_numpy() for c in ("category", "sub_category", "element", "brand", "price")}
    out = {"category_code": [], "brand": [], "price": [], "category_top": []}
    for p in product_id.tolist():
        r = row_of.get(p)
        levels = [label.get((f, int(cols[f][r]))) for f in ("category", "sub_category", "element")] if r is not None \
            else [None]
        levels = [x for x in levels if x and x != "unknown"]
        out["category_code"].append(".".join(levels) or None)
        out["category_top"].append(levels[0] if levels else "")
        brand = label.get(("brand", int(cols["brand"][r]))) if r is not None else None
        out["brand"].append(None if brand == "unknown" else brand)
        out["price"].append(round(float(cols["price"][r]), 2) if r is not None else None)
    out["category_top"] = np.asarray(out["category_top"], dtype=object)
    return out
