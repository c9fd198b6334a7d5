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


# --- the streamed generator: the same walk model, vectorised over whole chunks of sessions, written as it goes ---------

STREAM_CHUNK = 250_000  # sessions per chunk; a constant, so the output depends on the seed alone


class _Sampler:
    """The catalogue as arrays, so a step of every active walk is a handful of numpy operations."""

    def __init__(self, cat: Catalogue):
        n_cat = len(cat.category_items)
        self.cat = cat
        self.order = np.argsort(cat.category, kind="stable")  # products grouped by category
        sizes = np.bincount(cat.category, minlength=n_cat)
        self.seg_start = np.r_[0, np.cumsum(sizes)[:-1]]
        self.seg_end = self.seg_start + sizes - 1
        cum = np.cumsum(cat.weight[self.order])
        self.cum = cum
        self.cum_before = np.r_[0.0, cum][self.seg_start]
        self.cum_total = cum[self.seg_end] - self.cum_before
        self.start_cdf = np.cumsum(cat.weight)
        self.cat_cdf = np.cumsum(cat.category_weight)
        k = np.array([len(s) for s in cat.successors])
        width = len(SUCCESSOR_PROBS)
        self.succ = np.zeros((len(k), width), np.int64)
        probs = np.zeros((len(k), width))
        for j in range(width):
            has = k > j
            self.succ[has, j] = [cat.successors[i][j] for i in np.flatnonzero(has)]
            probs[has, j] = SUCCESSOR_PROBS[j]
        self.succ_cdf = np.cumsum(probs, 1) / probs.sum(1, keepdims=True)
        self.succ_k = k
        self.related = np.array([r for r in cat.related])  # (C, <= 3)

    def in_category(self, rng, cats: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """A product of each category of ``cats`` by popularity (not ``exclude``'s product, where given)."""
        out = np.empty(len(cats), np.int64)
        todo = np.arange(len(cats))
        while len(todo):
            c = cats[todo]
            u = self.cum_before[c] + rng.random(len(todo)) * self.cum_total[c]
            pos = np.clip(np.searchsorted(self.cum, u, side="right"), self.seg_start[c], self.seg_end[c])
            out[todo] = self.order[pos]
            todo = todo[out[todo] == exclude[todo]] if exclude is not None else todo[:0]
        return out

    def other_category(self, rng, cats: np.ndarray) -> np.ndarray:
        """A category by row share, other than each of ``cats``."""
        out = cats.copy()
        todo = np.arange(len(cats))
        while len(todo):
            out[todo] = np.minimum(np.searchsorted(self.cat_cdf, rng.random(len(todo)) * self.cat_cdf[-1]),
                                   len(self.cat_cdf) - 1)
            todo = todo[out[todo] == cats[todo]]
        return out

    def walks(self, rng, lengths: np.ndarray) -> np.ndarray:
        """Every walk of ``lengths`` concatenated: ``_walk``'s transition model, one step of all walks at a time."""
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        out = np.empty(int(lengths.sum()), np.int64)
        cur = np.minimum(np.searchsorted(self.start_cdf, rng.random(len(lengths)) * self.start_cdf[-1]),
                         len(self.start_cdf) - 1)
        out[offsets] = cur
        active = np.arange(len(lengths))
        for t in range(1, int(lengths.max(initial=1))):
            keep = lengths[active] > t
            active, cur = active[keep], cur[keep]
            if not len(active):
                break
            nxt = cur.copy()  # a repeat keeps the product
            c = self.cat.category[cur]
            move = rng.random(len(cur)) >= P_REPEAT
            same = move & (rng.random(len(cur)) < P_SAME_CATEGORY)
            succ = same & (rng.random(len(cur)) < P_SUCCESSOR)
            i = np.flatnonzero(succ)
            j = (self.succ_cdf[cur[i]] < rng.random(len(i))[:, None]).sum(1)
            nxt[i] = self.succ[cur[i], np.minimum(j, self.succ_k[cur[i]] - 1)]
            i = np.flatnonzero(same & ~succ)
            nxt[i] = self.in_category(rng, c[i], exclude=cur[i])
            i = np.flatnonzero(move & ~same)
            related = rng.random(len(i)) < P_RELATED_CATEGORY
            c2 = np.where(related, self.related[c[i], rng.integers(0, self.related.shape[1], len(i))],
                          self.other_category(rng, c[i]))
            nxt[i] = self.in_category(rng, c2)
            out[offsets[active] + t] = nxt
            cur = nxt
        return out


def _session_ids(rng, n: int) -> list[str]:
    """``n`` random UUID4 strings."""
    b = np.frombuffer(rng.bytes(16 * n), np.uint8).reshape(n, 16).copy()
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    h = b.tobytes().hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
            for i in range(0, 32 * n, 32)]


def write_month_streamed(cat: Catalogue, month: str, n_sessions: int, seed: int, path: Path, progress=None) -> int:
    """One month as ``generate_month`` models it, generated ``STREAM_CHUNK`` sessions at a time, vectorised, and
    appended to the CSV ``path``: memory stays flat whatever ``n_sessions`` (110M rows over two months is
    ``sessions_per_month: 16000000``). Sessions are taken in order of their start, and each chunk's rows by time,
    so the file is in time order except where a session runs past the next chunk's first start. Another random
    stream than ``generate_month``'s (the default run's data is that one's), the same statistics
    (``tests/test_synthetic.py``). Returns the rows written."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    sampler = _Sampler(cat)
    y, m = map(int, month.split("-"))
    start = int(datetime(y, m, 1, tzinfo=timezone.utc).timestamp())
    span = calendar.monthrange(y, m)[1] * 86400
    n_users = max(1, int(n_sessions / 1.12))
    user_ids = 500_000_000 + rng.permutation(n_users) * (100_000_000 // n_users)  # distinct, without a 100M range
    session_user = rng.permutation(np.concatenate([np.arange(min(n_users, n_sessions)),
                                                   rng.integers(0, n_users, max(0, n_sessions - n_users))]))
    starts = np.sort(start + rng.integers(0, span - 3600, n_sessions))
    codes = pa.array([x for x in cat.category_code], pa.string())
    brands = pa.array(cat.brand_names + [None], pa.string())
    rows = 0
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")  # no value holds a comma or a quote
    with open(path, "wb") as f, pacsv.CSVWriter(f, pa.schema([(c, t) for c, t in zip(COLUMNS, (
            pa.string(), pa.string(), pa.int64(), pa.int64(), pa.string(), pa.string(), pa.float64(), pa.int64(),
            pa.string()))]), write_options=options) as writer:
        f.write((",".join(COLUMNS) + "\n").encode())  # the upstream header, unquoted
        for s0 in range(0, n_sessions, STREAM_CHUNK):
            n = min(STREAM_CHUNK, n_sessions - s0)
            lengths = np.minimum(np.ceil(np.exp(rng.normal(0.55, 1.0, n))).astype(np.int64), 200)
            items = sampler.walks(rng, lengths)
            session = np.repeat(np.arange(n), lengths)
            # each view, then its cart (and maybe remove_from_cart) or purchase
            u = rng.random(len(items))
            cart = u < P_CART
            remove = cart & (rng.random(len(items)) < P_REMOVE / P_CART)
            purchase = (u >= P_CART) & (u < P_CART + P_PURCHASE)
            per_view = 1 + cart + remove + purchase
            view_of = np.repeat(np.arange(len(items)), per_view)
            k = np.arange(len(view_of)) - np.repeat(np.cumsum(per_view) - per_view, per_view)  # 0 = the view
            etype = np.where(k == 0, 0, np.where(k == 2, 3, np.where(cart[view_of], 1, 2)))
            last = k == per_view[view_of] - 1
            step = rng.integers(1, 20, len(view_of)) + np.where(last, rng.exponential(45, len(view_of)).astype(np.int64), 0)
            sess = session[view_of]
            first_row = np.r_[0, np.flatnonzero(np.diff(sess)) + 1]
            before = np.cumsum(step) - step
            t = starts[s0 + sess] + before - np.repeat(before[first_row], np.diff(np.r_[first_row, len(sess)]))
            keep = t < start + span
            order = np.argsort(t[keep], kind="stable")
            item, t, sess, etype = items[view_of][keep][order], t[keep][order], sess[keep][order], etype[keep][order]
            c = cat.category[item]
            ids = pa.array(_session_ids(rng, n), pa.string())
            table = pa.table({
                "event_time": pc.strftime(pa.array(t.astype("datetime64[s]")), format="%Y-%m-%d %H:%M:%S UTC"),
                "event_type": pa.array(np.array(["view", "cart", "purchase", "remove_from_cart"])[etype], pa.string()),
                "product_id": pa.array(cat.product_id[item]),
                "category_id": pa.array(cat.category_id[c]),
                "category_code": codes.take(pa.array(c)),
                "brand": brands.take(pa.array(np.where(cat.brand[item] < 0, len(cat.brand_names), cat.brand[item]))),
                "price": pa.array(cat.price[item]),
                "user_id": pa.array(user_ids[session_user[s0 + sess]]),
                "user_session": ids.take(pa.array(sess)),
            })
            writer.write_table(table)
            rows += table.num_rows
            if progress is not None:
                progress.update(table.num_rows)
    return rows
