"""Every filtering rule and its count; the category split; malformed input."""

import json

import pandas as pd
import pytest

from conftest import NOV_HEAD, OCT_HEAD, need, rees46_row, write_csv
from sessionrec.params import FilterEncodeParams
from sessionrec.prepare.filter_encode import filter_encode
from sessionrec.sources.rees46 import SourceError, check_header


row = rees46_row


def run(tmp_path, rows, **kw):
    p = write_csv(tmp_path / "2019-Oct.csv", rows)
    params = FilterEncodeParams(**kw)
    report = filter_encode([p], params, tmp_path / "out")
    return report, pd.read_parquet(tmp_path / "out" / "events.parquet")


def test_each_rule_is_counted(tmp_path):
    rows = [
        # s1: view, cart (not a view), repeat of 1 (dedup), 2, 3 -> kept as 1,2,3
        row(1, "view", 1), row(2, "cart", 1), row(3, "view", 1), row(4, "view", 2), row(5, "view", 3),
        # s2: only two distinct products -> min_products_per_session
        row(1, "view", 1, sess="s2"), row(2, "view", 2, sess="s2"), row(3, "view", 1, sess="s2"),
        # s3: missing brand (dropped by drop_listwise_nulls brand), then 3 products left
        row(1, "view", 4, sess="s3", brand=""), row(2, "view", 1, sess="s3"), row(3, "view", 2, sess="s3"),
        row(4, "view", 3, sess="s3"),
        # bad price and bad timestamp
        row(6, "view", 5, price="abc", sess="s4"), "not-a-time,view,5,1,,,1.0,1,s4",
        # missing session id
        row(7, "view", 5, sess=""),
    ]
    report, ev = run(tmp_path, rows, drop_listwise_nulls=["brand"], min_products_per_session=3)
    d = report["rows_dropped"]
    assert report["rows_read"] == 15 and report["malformed_lines_skipped"] == 0
    # a bad timestamp drops its row; a bad price only makes the price missing (the click stays in its session)
    assert d["unparseable_value.event_time"] == 1 and report["values_made_missing"] == {"price": 1, "category_id": 0, "user_id": 0}
    assert report["value_examples"]["event_time"] == [{"file": "2019-Oct.csv", "line": 15, "value": "not-a-time"}]
    assert report["value_examples"]["price"] == [{"file": "2019-Oct.csv", "line": 14, "value": "abc"}]
    assert d["missing_required"] == 1
    assert d["limit_to_view_event"] == 1
    assert d["drop_listwise_nulls.brand"] == 1
    assert d["dedup_consecutive"] == 1
    assert d["min_products_per_session"] == 4 and report["sessions_dropped"]["min_products_per_session"] == 2
    assert report["rows_kept"] == len(ev) == 6 and report["sessions"] == 2
    assert sum(d.values()) + report["rows_kept"] == report["rows_read"]


def test_min_item_support_and_max_session_length(tmp_path):
    rows = [row(i, "view", p, sess="a") for i, p in enumerate([1, 2, 3, 4, 5, 6])]
    rows += [row(i, "view", p, sess="b") for i, p in enumerate([1, 2, 3, 9])]
    report, ev = run(tmp_path, rows, min_item_support=2, max_session_length=2, min_products_per_session=2)
    assert report["rows_dropped"]["min_item_support"] == 4  # products 4, 5, 6, 9 seen once
    assert report["rows_dropped"]["max_session_length"] == 2  # a: 1,2,3 -> 2,3 ; b: 1,2,3 -> 2,3
    assert ev.groupby("session").product_id.apply(list).tolist() == [[2, 3], [2, 3]]


def test_category_split_and_encoding(tmp_path):
    rows = [row(1, "view", 10, code="appliances.kitchen.washer"), row(2, "view", 11, code="apparel.shoes"),
            row(3, "view", 12, code=""), row(4, "view", 13, code="a.b.c.d", brand="")]
    report, ev = run(tmp_path, rows, min_products_per_session=2)
    vocab = pd.read_parquet(tmp_path / "out" / "vocab.parquet")
    lab = {f: dict(zip(g.code, g.label)) for f, g in vocab.groupby("field")}
    got = [(lab["category"][r.category], lab["sub_category"][r.sub_category], lab["element"][r.element],
            lab["brand"][r.brand]) for r in ev.itertuples()]
    assert got == [("appliances", "kitchen", "washer", "acme"), ("apparel", "shoes", "unknown", "acme"),
                   ("unknown", "unknown", "unknown", "acme"), ("a", "b", "c.d", "unknown")]
    assert sorted(ev["item"]) == [1, 2, 3, 4] and vocab.code.min() == 1  # 0 stays padding


def test_truncated_last_line_of_real_head_is_counted(tmp_path):
    src = need(OCT_HEAD) / "2019-Oct.csv"
    report = filter_encode([src], FilterEncodeParams(), tmp_path / "out")
    assert report["malformed_lines_skipped"] == 1
    assert report["rows_read"] == 17435 and report["files"][0]["rows_parsed"] == 17434
    assert report["malformed_examples"][0]["text"].startswith("2019-10-01 02:50:00 UTC,view,10900305")
    assert report["sessions"] == 1405  # sessions with >= 3 distinct views, as ../shared/data/README.md counts
    json.dumps(report)


def test_headerless_november_head_is_a_clear_error():
    with pytest.raises(SourceError, match=r"2019-Nov\.csv: the first line is data, not a header"):
        check_header(need(NOV_HEAD) / "2019-Nov.csv")


def test_missing_column_is_a_clear_error(tmp_path):
    p = tmp_path / "2019-Oct.csv"
    p.write_text("event_time,event_type,product_id,category_id,category_code,price,user_id,user_session\n")
    with pytest.raises(SourceError, match=r"2019-Oct\.csv: missing column\(s\) \['brand'\]"):
        check_header(p)


def urow(minute, pid, user, sess="kaggle"):
    return f"2019-10-01 {minute // 60:02d}:{minute % 60:02d}:00 UTC,view,{pid},1,electronics.phone,acme,1.0,{user},{sess}"


def test_user_id_sessions_are_cut_at_the_gap(tmp_path):
    """GRU4Rec's sessions: one user's clicks, a new session after a gap over session_gap_minutes, whatever the
    Kaggle user_session says."""
    rows = [urow(0, 1, 7, "x"), urow(30, 2, 7, "y"), urow(90, 3, 7, "y"),  # 60 min gap: same session (not over)
            urow(151, 4, 7, "y"), urow(152, 5, 7, "y"),  # 61 min gap: a new session
            urow(0, 1, 8, "y"), urow(5, 2, 8, "y")]  # another user, same Kaggle session id
    report, ev = run(tmp_path, rows, session_key="user_id", min_products_per_session=2)
    got = sorted(ev.groupby("user_session").product_id.apply(list).tolist())
    assert got == [[1, 2], [1, 2, 3], [4, 5]]
    assert report["sessions_from_user_id"]["sessions"] == 3 and report["sessions_from_user_id"]["kaggle_user_sessions"] == 2


def test_iterative_filter_repeats_until_stable(tmp_path):
    """Item 9 has support 2 < 3: dropping it leaves session c with one click, whose drop leaves item 1 with 2 clicks,
    whose drop leaves d and e with one click each; a single pass keeps item 1 and sessions d and e."""
    rows = [urow(i, p, 1, "a") for i, p in enumerate([2, 3, 2, 3])]
    rows += [urow(i, p, 2, "b") for i, p in enumerate([2, 3, 2, 3])]
    rows += [urow(i, p, 3, "c") for i, p in enumerate([1, 9])]
    rows += [urow(i, p, 4, "d") for i, p in enumerate([1, 2, 9])]
    rows += [urow(i, p, 5, "e") for i, p in enumerate([1, 3])]
    once, ev_once = run(tmp_path, rows, min_item_support=3, min_products_per_session=2)
    assert 1 in set(ev_once.product_id)  # one pass: item 1 had 3 clicks when support was counted
    report, ev = run(tmp_path, rows, min_item_support=3, min_session_events=2, min_products_per_session=2,
                     iterative_filter=True)
    assert set(ev.product_id) == {2, 3} and set(ev.user_session) == {"a", "b"}
    assert report["iterative_filter_rounds"] == 4  # the last round drops nothing
    assert sum(report["rows_dropped"].values()) + report["rows_kept"] == report["rows_read"]


@pytest.mark.parametrize("session_key", ["user_session", "user_id"])
def test_session_keys_sharing_a_hash_are_numbered_exactly(tmp_path, monkeypatch, session_key):
    """The working tables stand for a session key by its hash; when two keys share one (forced here: three hash
    values for the October head's thousands of sessions) the keys are numbered exactly, and nothing changes."""
    need(OCT_HEAD)
    from sessionrec.prepare import filter_encode as fe

    params = FilterEncodeParams(session_key=session_key, min_item_support=2)
    normal = filter_encode([OCT_HEAD / "2019-Oct.csv"], params, tmp_path / "hash")
    monkeypatch.setattr(fe, "SESSION_HASH", "hash({col}) % 3")
    exact = filter_encode([OCT_HEAD / "2019-Oct.csv"], params, tmp_path / "exact")
    assert normal == exact and normal["rows_kept"] > 1000
    assert pd.read_parquet(tmp_path / "hash" / "events.parquet").equals(
        pd.read_parquet(tmp_path / "exact" / "events.parquet"))


def test_the_threaded_parse_keeps_the_file_order(tmp_path):
    """Staging parses a clean file on several threads; its rows and row numbers are the one-thread parse's, in file
    order, even over many blocks."""
    import pyarrow.parquet as pq

    from sessionrec.prepare.filter_encode import _stage_file

    p = write_csv(tmp_path / "2019-Oct.csv", [row(i % 3600, "view", i, sess=f"s{i // 7}") for i in range(5000)])
    got = {}
    for threads in (True, False):
        dst = tmp_path / f"{threads}.parquet"
        n, bad = _stage_file(p, dst, 100, block_size=4096, threads=threads)
        assert n == 5000 and bad == []
        got[threads] = pq.read_table(dst)
    assert got[True].equals(got[False])
    assert got[True].column("row").to_pylist() == list(range(100, 5100))
    assert got[True].column("product_id").to_pylist() == [str(i) for i in range(5000)]
