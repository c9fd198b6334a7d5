"""A seeded generator of REES46-format click logs, calibrated on the real October 2019 head.

What it reproduces (measured on ``../shared/data/rees46-2019-oct-head``; ``tests/test_synthetic.py`` checks them):
category_code missing in ~33% of rows (per category_id, as upstream), brand in ~14% (per product); ~22% of views
repeat the previous product of the session; ~82% of the other transitions stay in the same category_id; views per
session median 2, mean ~3.4; long-tailed (Zipf) product popularity; log-normal prices per category; ~98% views, the
rest cart / purchase / remove_from_cart; users with several sessions.

Sequential structure, so that sequence and graph models have something to learn beyond popularity: every product has
a short ranked list of "successor" products in its category (same brand favoured) and every category a few related
categories; a visitor mostly walks these links. Popularity alone cannot predict a walk, a model of the last clicks can.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from sessionrec.sources.rees46 import COLUMNS

P_REPEAT = 0.318  # share of transitions that repeat the product (0.22 of all views incl. session starts)
P_SAME_CATEGORY = 0.82  # share of the other transitions that stay in the category
P_SUCCESSOR = 0.7  # within the category: follow the product's successor list, else popularity
P_RELATED_CATEGORY = 0.6  # when leaving the category: go to a related one, else any by popularity
SUCCESSOR_PROBS = np.array([0.45, 0.25, 0.15, 0.1, 0.05])
P_CART, P_PURCHASE, P_REMOVE = 0.009, 0.011, 0.001
MISSING_CODE_SHARE, MISSING_BRAND_SHARE = 0.33, 0.14

TOP = ["electronics", "appliances", "computers", "furniture", "apparel", "construction", "kids", "auto", "sport",
       "accessories", "country_yard", "medicine", "stationery"]
SUB = ["smartphone", "kitchen", "environment", "audio", "video", "notebook", "components", "peripherals", "living_room",
       "bedroom", "shoes", "tools", "toys", "accessories", "bicycle", "bag", "personal", "cleaning", "clocks", "tablet"]
ELEM = ["refrigerators", "washer", "vacuum", "headphone", "tv", "mouse", "keyboard", "sofa", "bed", "drill",
        "light", "carriage", "player", "iron", "kettle", "blender", "microwave", "hood", "oven", "printer"]
SYLL = ["sa", "mo", "li", "ka", "te", "ro", "vi", "xa", "no", "be", "zu", "mi", "ha", "po", "le", "an", "ok", "ri"]


@dataclass
class Catalogue:
    product_id: np.ndarray  # (I,) int64
    category: np.ndarray  # (I,) index into categories
    brand: np.ndarray  # (I,) index into brand names, -1 = missing
    price: np.ndarray  # (I,) float
    weight: np.ndarray  # (I,) popularity, sums to 1
    successors: list  # per product: array of successor product indices
    category_id: np.ndarray  # (C,) int64, 19 digits
    category_code: list  # (C,) str or None
    category_items: list  # per category: array of product indices
    category_weight: np.ndarray  # (C,)
    related: list  # per category: array of related category indices
    brand_names: list


def _zipf(rng: np.random.Generator, n: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** a
    return rng.permutation(w / w.sum())


def _pick_missing(rng, weights: np.ndarray, share: float) -> np.ndarray:
    """Mark random entries missing, skipping any that would overshoot, so their row share comes close to ``share``."""
    weights = weights / weights.sum()
    missing = np.zeros(len(weights), dtype=bool)
    total = 0.0
    for i in rng.permutation(len(weights)):
        if total + weights[i] <= share:
            missing[i] = True
            total += weights[i]
    return missing


def make_catalogue(n_items: int, n_categories: int, n_brands: int, seed: int) -> Catalogue:
    if n_items < 2 * n_categories:
        raise ValueError(f"data.synthetic.n_items ({n_items}) must be at least 2 x data.synthetic.n_categories "
                         f"({n_categories}) so every category has two products")
    rng = np.random.default_rng(seed)
    cat_w = _zipf(rng, n_categories, 1.0)
    category = np.concatenate([np.repeat(np.arange(n_categories), 2),
                               rng.choice(n_categories, n_items - 2 * n_categories, p=cat_w)])
    category = rng.permutation(category)
    weight = _zipf(rng, n_items, 1.0)
    brand_w = _zipf(rng, n_brands, 1.1)
    cat_brands = [rng.choice(n_brands, size=min(n_brands, int(rng.integers(2, 12))), replace=False, p=brand_w)
                  for _ in range(n_categories)]
    brand = np.array([rng.choice(cat_brands[c]) for c in category])
    mu = rng.normal(4.6, 1.1, n_categories)
    price = np.round(np.exp(rng.normal(mu[category], 0.35)), 2)
    category_items = [np.flatnonzero(category == c) for c in range(n_categories)]
    successors = []
    for i in range(n_items):
        cands = category_items[category[i]]
        cands = cands[cands != i]
        w = weight[cands] ** 0.5 * np.where(brand[cands] == brand[i], 4.0, 1.0)
        k = min(len(SUCCESSOR_PROBS), len(cands))
        successors.append(rng.choice(cands, size=k, replace=False, p=w / w.sum()))
    cat_row_share = np.bincount(category, weights=weight, minlength=n_categories)
    related = [rng.choice(np.delete(np.arange(n_categories), c), size=min(3, n_categories - 1), replace=False)
               for c in range(n_categories)]
    pilot = Catalogue(np.zeros(n_items, np.int64), category, brand, price, weight, successors, np.zeros(0),
                      [], category_items, cat_row_share / cat_row_share.sum(), related, [])
    # the walk's own visit frequencies (not the start popularity) decide how many rows a missing value touches
    visits = np.bincount(np.concatenate([_walk(rng, pilot, 4) for _ in range(20000)]), minlength=n_items) + 1e-3
    brand[_pick_missing(rng, visits.astype(float), MISSING_BRAND_SHARE)] = -1
    no_code = _pick_missing(rng, np.bincount(category, weights=visits, minlength=n_categories), MISSING_CODE_SHARE)
    codes = []
    for c in range(n_categories):
        if no_code[c]:
            codes.append(None)
            continue
        parts = [TOP[rng.integers(len(TOP))], SUB[rng.integers(len(SUB))]]
        if rng.random() < 0.8:
            parts.append(ELEM[rng.integers(len(ELEM))])
        codes.append(".".join(parts))
    names = set()
    while len(names) < n_brands:
        names.add("".join(rng.choice(SYLL, size=int(rng.integers(2, 4)))))
    return Catalogue(
        product_id=rng.choice(np.arange(1_000_000, 100_000_000), n_items, replace=False),
        category=category, brand=brand, price=price, weight=weight, successors=successors,
        category_id=2053013552000000000 + rng.choice(10**15, n_categories, replace=False),
        category_code=codes, category_items=category_items, category_weight=cat_row_share / cat_row_share.sum(),
        related=related, brand_names=sorted(names))


def _walk(rng, cat: Catalogue, length: int) -> list[int]:
    item = int(rng.choice(len(cat.weight), p=cat.weight))
    walk = [item]
    for _ in range(length - 1):
        u = rng.random()
        if u < P_REPEAT:
            walk.append(item)
            continue
        c = cat.category[item]
        if rng.random() < P_SAME_CATEGORY:
            succ = cat.successors[item]
            if rng.random() < P_SUCCESSOR:
                p = SUCCESSOR_PROBS[: len(succ)] / SUCCESSOR_PROBS[: len(succ)].sum()
                item = int(succ[rng.choice(len(succ), p=p)])
            else:
                members = cat.category_items[c]
                members = members[members != item]
                w = cat.weight[members]
                item = int(members[rng.choice(len(members), p=w / w.sum())])
        else:
            if rng.random() < P_RELATED_CATEGORY:
                c2 = int(rng.choice(cat.related[c]))
            else:
                c2 = c
                while c2 == c:
                    c2 = int(rng.choice(len(cat.category_weight), p=cat.category_weight))
            members = cat.category_items[c2]
            w = cat.weight[members]
            item = int(members[rng.choice(len(members), p=w / w.sum())])
        walk.append(item)
    return walk


def generate_month(cat: Catalogue, month: str, n_sessions: int, seed: int) -> pd.DataFrame:
    """One month of events in the upstream schema, sorted by event_time (as the upstream files are)."""
    rng = np.random.default_rng(seed)
    y, m = map(int, month.split("-"))
    start = int(datetime(y, m, 1, tzinfo=timezone.utc).timestamp())
    span = calendar.monthrange(y, m)[1] * 86400
    lengths = np.minimum(np.ceil(np.exp(rng.normal(0.55, 1.0, n_sessions))).astype(int), 200)
    n_users = max(1, int(n_sessions / 1.12))
    user_ids = rng.choice(np.arange(500_000_000, 600_000_000), n_users, replace=False)
    session_user = np.concatenate([np.arange(min(n_users, n_sessions)),
                                   rng.integers(0, n_users, max(0, n_sessions - n_users))])
    session_user = rng.permutation(session_user)
    starts = start + rng.integers(0, span - 3600, n_sessions)
    rows = {k: [] for k in ("t", "type", "item", "user", "session")}
    for s in range(n_sessions):
        sid = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)), version=4))
        t = int(starts[s])
        for item in _walk(rng, cat, int(lengths[s])):
            events = ["view"]
            u = rng.random()
            if u < P_CART:
                events.append("cart")
                if rng.random() < P_REMOVE / P_CART:
                    events.append("remove_from_cart")
            elif u < P_CART + P_PURCHASE:
                events.append("purchase")
            for ev in events:
                rows["t"].append(t)
                rows["type"].append(ev)
                rows["item"].append(item)
                rows["user"].append(session_user[s])
                rows["session"].append(sid)
                t += int(rng.integers(1, 20))
            t += int(rng.exponential(45))
    item = np.array(rows["item"])
    c = cat.category[item]
    codes = np.array([x if x is not None else "" for x in cat.category_code], dtype=object)
    brands = np.array(cat.brand_names + [""], dtype=object)
    df = pd.DataFrame({
        "t": np.array(rows["t"]),
        "event_type": rows["type"],
        "product_id": cat.product_id[item],
        "category_id": cat.category_id[c],
        "category_code": codes[c],
        "brand": brands[cat.brand[item]],
        "price": cat.price[item],
        "user_id": user_ids[np.array(rows["user"])],
        "user_session": rows["session"],
    })
    df = df.sort_values("t", kind="stable")
    df = df[df.t < start + span]
    df.insert(0, "event_time", pd.to_datetime(df.pop("t"), unit="s").dt.strftime("%Y-%m-%d %H:%M:%S UTC"))
    return df[list(COLUMNS)].reset_index(drop=True)


def write_month(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, float_format="%.2f")
