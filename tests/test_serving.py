"""The recommendation service: it ranks a live session exactly as the model ranks the same example of a graph store
(pop, STAN, SR-GNN, the default GNN, the hybrid); fallbacks; the bounded session store; and, end to end, the real
service (uvicorn on a free loopback port) on a pipeline's output, every endpoint and every bad input."""

import json
import re
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from conftest import N_ITEMS, TINY, call, project_copy, served, sh
from quality import config, planted, repeat_store
from sessionrec.graphs.store import GraphStore
from sessionrec.serving.batch import read_sessions
from sessionrec.serving.recommender import CATEGORY_POPULARITY, MODEL, POPULARITY, Click, Recommender
from sessionrec.serving.sessions import SessionFull, SessionStore
from sessionrec.training.loop import new_model

PID = 1000  # product_id = PID + item


def recommender(model, name, events):
    n = N_ITEMS + 1
    catalogue = {f: np.ones(n, np.int64) for f in ("category", "sub_category", "element", "brand")}
    catalogue.update(item=np.arange(n), price=np.zeros(n, np.float32), product_id=PID + np.arange(n))
    tops = np.array(["", *(("shoes" if i % 2 else "bags") for i in range(1, n))], dtype=object)
    display = {"category_code": list(tops), "brand": [None] * n, "price": [None] * n, "category_top": tops}
    return Recommender(model, name, catalogue, np.bincount(events["item"], minlength=n), display)


def session_of(store: GraphStore, i: int) -> tuple[list, int]:
    b = store.batch(np.array([i]))
    return b.item[b.alias[0][b.mask[0]]].tolist(), int(b.time[0])


@pytest.mark.parametrize("name", ["pop", "stan", "srgnn", "graph_with_embeddings_and_attentional_aggregation",
                                  "hybrid"])
def test_service_ranks_a_session_as_the_model_ranks_its_example(tmp_path, name):
    (train, events), val, test = planted(tmp_path)
    model = new_model(config(name), 0)
    if model.kind != "network":
        model.fit_events(events["session"], events["item"], events["ts"])
    model.eval()
    rec = recommender(model, name, events)
    for i in range(0, len(test), 7):
        items, t = session_of(test, i)
        with torch.no_grad():
            scores = model(test.batch(np.array([i])))[0].double().numpy()
        scores[0] = -np.inf
        want = np.lexsort((np.arange(len(scores)), -scores))[:10]
        got = rec.recommend([Click(PID + it, t) for it in items], 10, exclude_seen=False)
        assert got["strategy"] == MODEL and got["unknown_products"] == []
        assert [r["product_id"] - PID for r in got["items"]] == want.tolist(), (name, i)
        np.testing.assert_allclose([r["score"] for r in got["items"]], scores[want])


@pytest.mark.parametrize("name", ["pop", "stan", "gru4rec", "srgnn", "graph_with_embeddings",
                                  "graph_with_embeddings_and_attention",
                                  "graph_with_embeddings_and_attentional_aggregation", "hybrid"])
def test_explanations_name_each_clicks_weight_or_say_there_is_none(tmp_path, name):
    (_, events), _, test = planted(tmp_path)
    model = new_model(config(name), 0)
    if model.kind != "network":
        model.fit_events(events["session"], events["item"], events["ts"])
    rec = recommender(model, name, events)
    items, t = session_of(test, 0)
    clicks = [Click(PID + it, t) for it in items]
    plain, out = rec.recommend(clicks, 5), rec.recommend(clicks, 5, explain=True)
    e = out.pop("explanation")
    assert out == plain  # explaining changes nothing in the answer
    if name in ("srgnn", "graph_with_embeddings_and_attention", "graph_with_embeddings_and_attentional_aggregation"):
        assert [c["product_id"] for c in e["clicks"]] == [PID + it for it in items]
        assert all(np.isfinite(c["weight"]) for c in e["clicks"]) and e["parts"] is None
        if name.endswith("aggregation"):  # the gate is a softmax over the session's distinct products
            first = {c["product_id"]: c["weight"] for c in e["clicks"]}
            assert sum(first.values()) == pytest.approx(1.0)
    elif name == "hybrid":
        assert [p["part"] for p in e["parts"]] == model.part_names and e["clicks"] is None
        assert sum(p["weight"] for p in e["parts"]) == pytest.approx(1.0)
        totals = np.sum([p["contributions"] for p in e["parts"]], axis=0)  # the pooled score, but the 1e-9 tie-break
        np.testing.assert_allclose(totals, [r["score"] for r in out["items"]], atol=1e-8)
    else:
        assert e["what"].startswith("none:") and e["clicks"] is None and e["parts"] is None
    assert rec.recommend([], 3, explain=True)["explanation"]["what"].startswith("none: answered by popularity")


def test_unknown_products_fallbacks_and_excluding_the_session(tmp_path):
    _, events = repeat_store(tmp_path / "t.lmdb", 50, 0)
    pop = new_model(config("pop"), 0)
    pop.fit_events(events["session"], events["item"], events["ts"])
    rec = recommender(pop, "pop", events)
    popular = np.argsort(-np.bincount(events["item"], minlength=N_ITEMS + 1), kind="stable")[:5] + PID
    assert rec.recommend([], 5)["strategy"] == POPULARITY
    assert [r["product_id"] for r in rec.recommend([], 5)["items"]] == popular.tolist()
    out = rec.recommend([Click(5), Click(7, category="shoes.sneakers")], 5)
    assert out["strategy"] == CATEGORY_POPULARITY and out["unknown_products"] == [5, 7]
    assert all(r["category_code"] == "shoes" for r in out["items"])
    seen = rec.recommend([Click(int(popular[0])), Click(3)], 5)
    assert seen["strategy"] == MODEL and seen["unknown_products"] == [3]
    assert int(popular[0]) not in [r["product_id"] for r in seen["items"]]  # excluded by default
    assert int(popular[0]) in [r["product_id"] for r in rec.recommend([Click(int(popular[0]))], 5, False)["items"]]


def test_categories_and_products_most_clicked_first(tmp_path):
    _, events = repeat_store(tmp_path / "t.lmdb", 50, 0)
    rec = recommender(new_model(config("pop"), 0), "pop", events)
    counts = np.bincount(events["item"], minlength=N_ITEMS + 1)
    by_clicks = np.lexsort((np.arange(N_ITEMS + 1), -counts))
    for c in rec.categories():
        odd = c["category"] == "shoes"  # the toy catalogue: odd items are shoes, even ones bags
        items = [i for i in by_clicks if i > 0 and i % 2 == odd]
        assert c["products"] == len(items) and c["clicks"] == counts[items].sum()
        assert [p["product_id"] - PID for p in rec.products(c["category"], 7)] == items[:7]
    assert sorted(c["category"] for c in rec.categories()) == ["bags", "shoes"]
    assert [c["clicks"] for c in rec.categories()] == sorted((c["clicks"] for c in rec.categories()), reverse=True)
    assert [p["product_id"] - PID for p in rec.products(None, 5)] == [i for i in by_clicks if i > 0][:5]
    assert rec.products("hats", 5) is None


def test_session_store_evicts_by_size_and_by_ttl_and_bounds_clicks():
    now = [0.0]
    store = SessionStore(max_sessions=2, ttl=10, max_events=3, clock=lambda: now[0])
    store.append("a", Click(1))
    store.append("b", Click(2))
    store.append("a", Click(3))  # a is now the most recently used
    store.append("c", Click(4))  # over the size bound: b, the least recently used, goes
    assert store.get("b") is None and [c.product_id for c in store.get("a").clicks] == [1, 3]
    assert store.evicted == {"size": 1, "ttl": 0}
    now[0] = 9.0
    store.append("c", Click(5))
    now[0] = 12.0  # a idle for 12 s > ttl; c for 3 s
    assert store.get("a") is None and store.get("c") is not None and len(store) == 1
    assert store.evicted["ttl"] == 1
    store.append("c", Click(6))
    with pytest.raises(SessionFull, match="already has 3 clicks"):
        store.append("c", Click(7))
    assert store.delete("c") and not store.delete("c")


@pytest.mark.slow
def test_real_service_on_a_pipeline_output(tmp_path):
    """``python src/serve.py`` after ``dvc repro``: every endpoint, every bad input a 4xx naming the field, the
    n-th live click equal to /recommend on n clicks, and the top-k of test sessions equal to the model's."""
    proj, env = project_copy(tmp_path, {**TINY, "model": {**TINY["model"], "name": "stan"}})
    sh(proj, env, "dvc", "repro")
    with served(proj, env) as (base, server):
        status, meta = call(base, "GET", "/metadata")
        lock_md5 = next(o["md5"] for o in yaml.safe_load((proj / "dvc.lock").read_text())["stages"]["train"]["outs"]
                        if o["path"] == "models/model.pt")
        assert status == 200 and meta["model"] == "stan" and meta["hashes"]["models/model.pt"] == lock_md5
        assert meta["test_metrics"] == json.loads((proj / "metrics/test.json").read_text())

        # the top-k of test sessions equals the model's ranking of the same examples (evaluate's code path)
        from sessionrec.training.checkpoint import load_model

        model, _ = load_model(proj / "models/model.pt")
        test = GraphStore(proj / "data/graphs/test.lmdb")
        cat = pq.read_table(proj / "data/split/catalogue.parquet").to_pydict()
        pid = dict(zip(cat["item"], cat["product_id"]))
        for i in range(0, len(test), max(1, len(test) // 10)):
            items, t = session_of(test, i)
            with torch.no_grad():
                scores = model(test.batch(np.array([i])))[0].double().numpy()
            scores[0] = -np.inf
            want = [pid[int(j)] for j in np.lexsort((np.arange(len(scores)), -scores))[:20]]
            status, got = call(base, "POST", "/recommend", {"events": [{"product_id": pid[it], "event_time": t}
                                                                        for it in items], "exclude_seen": False})
            assert status == 200 and [r["product_id"] for r in got["items"]] == want

        # a live session: the n-th click's answer equals /recommend on the n clicks
        clicks = [{"product_id": pid[it], "event_time": 1570000000 + j} for j, it in enumerate(session_of(test, 0)[0])]
        clicks.append({"product_id": 1, "event_time": 1570000100})  # unknown to the catalogue
        for n, c in enumerate(clicks, 1):
            status, live = call(base, "POST", "/sessions/s-1/events", {**c, "k": 7, "user_id": 42})
            assert status == 200 and live["clicks"] == n
            _, once = call(base, "POST", "/recommend", {"events": clicks[:n], "k": 7})
            assert live["items"] == once["items"] and live["strategy"] == once["strategy"]
        assert live["unknown_products"] == [1]
        status, s = call(base, "GET", "/sessions/s-1")
        assert status == 200 and s["user_id"] == 42 and [e["product_id"] for e in s["events"]] == \
            [c["product_id"] for c in clicks]
        assert call(base, "DELETE", "/sessions/s-1")[0] == 204
        assert call(base, "GET", "/sessions/s-1")[0] == 404 and call(base, "DELETE", "/sessions/s-1")[0] == 404
        assert call(base, "POST", "/recommend", {"events": []})[1]["strategy"] == "popularity"
        ev = pq.read_table(proj / "data/interim/events.parquet", columns=["session", "user_id"]).to_pydict()
        train_sessions = set(pq.read_table(proj / "data/split/train.parquet", columns=["session"])
                             .column("session").to_pylist())
        returning = next(u for s, u in zip(ev["session"], ev["user_id"]) if s in train_sessions)
        assert call(base, "POST", "/recommend", {"events": [], "user_id": returning})[1]["strategy"] == \
            "visitor_history"
        status, explained = call(base, "POST", "/recommend", {"events": clicks[:2], "explain": True})
        assert status == 200 and explained["explanation"]["what"].startswith("none: stan")

        bad = [({"events": [], "k": 0}, "k"), ({"events": [], "k": 101}, "k"), ({"events": "x"}, "events"),
               ({"events": [{"product_id": "a"}]}, "product_id"), ({"events": [], "kk": 1}, "kk"),
               ({"events": [{"product_id": 1}] * 201}, "events"), ({}, "events"),
               ({"events": [{"product_id": 1, "event_time": 1.7e12}]}, "in milliseconds?"),
               ({"events": [{"product_id": 1, "event_time": -1}]}, "event_time"),
               ({"events": [{"product_id": 1, "event_time": "1969-12-31T23:59:59Z"}]}, "event_time")]
        for body, field in bad:
            status, err = call(base, "POST", "/recommend", body)
            assert status == 422 and field in json.dumps(err), (body, err)
        for raw in (b'{"events": [{"product_id": 1, "event_time": NaN}]}', b'{"events": [], "k": Infinity}'):
            status, err = call(base, "POST", "/recommend", raw=raw)  # Python's JSON reads them; the echo is text
            assert status == 422 and ("event_time" if b"NaN" in raw else "'k'") in str(err), (raw, err)
        assert call(base, "POST", "/recommend", raw=b"{not json")[0] == 422
        assert call(base, "POST", "/recommend", raw=b" " * 70000)[0] == 413
        assert call(base, "POST", "/sessions/bad id/events".replace(" ", "%20"), {"product_id": 1})[0] == 422
        status, cats = call(base, "GET", "/categories")
        assert status == 200 and sum(c["products"] for c in cats) == meta["catalogue_items"]
        status, shown = call(base, "GET", f"/products?category={cats[0]['category']}&limit=5")
        assert status == 200 and len(shown) == 5
        assert all((p["category_code"] or "").split(".")[0] == cats[0]["category"] for p in shown)
        assert call(base, "GET", "/products?limit=101")[0] == 422 and call(base, "GET", "/products?limit=x")[0] == 422
        status, err = call(base, "GET", "/products?category=nope")
        assert status == 404 and "category" in err["detail"]
        assert server.poll() is None  # no request brought it down

        # the offline batch ranks each session as the service does
        raw = next((proj / "data/raw").glob("*.csv")).read_text().splitlines()
        (tmp_path / "sessions.csv").write_text("\n".join(raw[:300]) + "\n")
        sh(proj, env, sys.executable, "src/recommend.py", "--input", str(tmp_path / "sessions.csv"), "--output",
           str(tmp_path / "recs.csv"), "--k", "5")
        recs = pd.read_csv(tmp_path / "recs.csv")
        for sid, clicks in read_sessions(tmp_path / "sessions.csv")[:5]:
            events = [{"product_id": c.product_id, "event_time": c.event_time} for c in clicks]
            _, once = call(base, "POST", "/recommend", {"events": events, "k": 5})
            mine = recs[recs.user_session == sid]
            assert mine["product_id"].tolist() == [r["product_id"] for r in once["items"]]
            assert mine["rank"].tolist() == [r["rank"] for r in once["items"]]
            assert set(mine["strategy"]) <= {once["strategy"]}


def test_click_times_are_unix_seconds_or_iso_and_a_time_without_zone_is_utc(monkeypatch):
    """As ``filter_encode`` reads the data, whatever the server's zone; a time outside 1970-2100 (milliseconds, NaN,
    a negative number) is refused with a message naming it."""
    import time

    from pydantic import ValidationError

    from sessionrec.serving.app import Event

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        for t in ("2019-10-01T08:00:00", "2019-10-01 08:00:00Z", "2019-10-01T17:00:00+09:00", 1569916800):
            assert Event(product_id=1, event_time=t).click().event_time == 1569916800, t
    finally:
        monkeypatch.undo()
        time.tzset()
    for t, says in ((1.5699168e12, "in milliseconds?"), (float("nan"), "nan is not"), (-1, "1970"),
                    ("2100-01-01T00:00:00Z", "2100")):
        with pytest.raises(ValidationError, match=re.escape(says)):
            Event(product_id=1, event_time=t)


def test_top_k_equals_a_full_sort_ties_by_index():
    from sessionrec.serving.recommender import top_k

    rng = np.random.default_rng(0)
    for n, k in [(50, 5), (50, 50), (50, 80), (1000, 20)]:
        scores = rng.integers(0, 8, n).astype(np.float64)  # many ties
        scores[rng.choice(n, 5, replace=False)] = -np.inf
        full = [int(i) for i in np.lexsort((np.arange(n), -scores)) if np.isfinite(scores[i])][:k]
        assert top_k(scores, k) == full


def test_visitor_history_is_item_knn_over_the_visitors_training_views():
    from sessionrec.serving.history import VisitorHistory

    session = np.array([0, 0, 1, 1, 2, 3, 3])
    item = np.array([1, 2, 2, 3, 4, 1, 4])
    h = VisitorHistory(session, item, {0: 7, 1: 8, 2: 7, 3: 9}, n_items=6)
    sessions_of = {i: {int(s) for s, j in zip(session, item) if j == i} for i in range(6)}
    counts = {1: 1, 2: 1, 4: 1}  # user 7: sessions 0 and 2
    want = [sum(c * len(sessions_of[hh] & sessions_of[i]) / np.sqrt(len(sessions_of[hh]) * len(sessions_of[i]))
                for hh, c in counts.items()) if sessions_of[i] else 0.0 for i in range(6)]
    np.testing.assert_allclose(h.scores(7), want)
    assert h.scores(99) is None and h.scores(None) is None

    pop = new_model(config("pop"), 0)
    rec = recommender(pop, "pop", {"item": item})
    rec.history = h
    assert rec.recommend([], 3, user_id=7)["strategy"] == "visitor_history"
    assert [r["product_id"] - PID for r in rec.recommend([], 3, user_id=7)["items"]] == \
        [int(i) for i in np.lexsort((np.arange(6), -np.asarray(want)))[:3]]
    assert rec.recommend([Click(PID + 1)], 3, user_id=7)["strategy"] == MODEL  # the session takes over
    assert rec.recommend([], 3, user_id=99)["strategy"] == POPULARITY
