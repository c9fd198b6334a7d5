"""The synthetic generator against the real October head: same schema, statistics within tolerances."""

import re

import numpy as np
import pandas as pd
import pytest

from conftest import OCT_HEAD, need
from sessionrec.sources import synthetic
from sessionrec.sources.rees46 import COLUMNS


def session_stats(df: pd.DataFrame) -> dict:
    v = df[df.event_type == "view"].copy()
    v["order"] = np.arange(len(v))
    v = v.sort_values(["user_session", "event_time", "order"], kind="stable")
    g = v.groupby("user_session", sort=False)
    prev, prev_cat = g.product_id.shift(), g.category_id.shift()
    moved = prev.notna() & (v.product_id != prev)
    sizes = g.size()
    counts = v.product_id.value_counts()
    return {
        "view_share": (df.event_type == "view").mean(),
        "code_missing": df.category_code.isna().mean(),
        "brand_missing": df.brand.isna().mean(),
        "repeat": (v.product_id == prev).mean(),
        "same_category": (v.category_id == prev_cat)[moved].mean(),
        "median_len": sizes.median(),
        "mean_len": sizes.mean(),
        "max_len": sizes.max(),
        "sessions_per_user": df.groupby("user_id").user_session.nunique().mean(),
        "top_decile_share": counts.iloc[: max(1, len(counts) // 10)].sum() / counts.sum(),
    }


TOLERANCE = {"view_share": 0.01, "code_missing": 0.05, "brand_missing": 0.05, "repeat": 0.04,
             "same_category": 0.04, "median_len": 0, "mean_len": 0.5, "sessions_per_user": 0.1,
             "top_decile_share": 0.15}


@pytest.fixture(scope="module", params=["per_session", "stream"])
def generated(request, tmp_path_factory):
    """A month from each generator: the per-session one (the default run's) and the streamed one (full scale)."""
    cat = synthetic.make_catalogue(n_items=4000, n_categories=150, n_brands=300, seed=3)
    path = tmp_path_factory.mktemp("syn") / "2019-Oct.csv"
    if request.param == "stream":
        synthetic.write_month_streamed(cat, "2019-10", 5000, seed=4, path=path)
    else:
        synthetic.write_month(synthetic.generate_month(cat, "2019-10", 5000, seed=4), path)
    return path


def test_statistics_match_real_head(generated):
    real = pd.read_csv(need(OCT_HEAD) / "2019-Oct.csv", on_bad_lines="skip").dropna(subset=["user_session"])
    syn = pd.read_csv(generated)
    rs, ss = session_stats(real), session_stats(syn)
    for key, tol in TOLERANCE.items():
        assert abs(rs[key] - ss[key]) <= tol, f"{key}: real {rs[key]:.3f}, synthetic {ss[key]:.3f}"
    assert 20 <= ss["max_len"] <= 200


def test_upstream_format(generated):
    lines = generated.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    row = lines[1].split(",")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row[0])
    assert re.fullmatch(r"\d{19}", row[3])
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", row[8])
    times = [ln[:19] for ln in lines[1:]]
    assert times == sorted(times)
    assert {ln.split(",")[1] for ln in lines[1:]} >= {"view", "cart", "purchase"}


def test_seeded_and_deterministic(tmp_path):
    cat = synthetic.make_catalogue(200, 20, 30, seed=1)
    a = synthetic.generate_month(cat, "2019-11", 300, seed=2)
    b = synthetic.generate_month(synthetic.make_catalogue(200, 20, 30, seed=1), "2019-11", 300, seed=2)
    pd.testing.assert_frame_equal(a, b)
    c = synthetic.generate_month(cat, "2019-11", 300, seed=3)
    assert not a.equals(c)
    assert a.event_time.str.startswith("2019-11").all()


def test_too_few_items_is_a_clear_error():
    with pytest.raises(ValueError, match="n_items"):
        synthetic.make_catalogue(10, 20, 5, seed=0)


def test_streamed_generator_is_seeded_and_its_chunks_follow_each_other(tmp_path, monkeypatch):
    """Same seed, same bytes; several chunks (a small ``STREAM_CHUNK``) give distinct sessions and every row."""
    monkeypatch.setattr(synthetic, "STREAM_CHUNK", 70)
    cat = synthetic.make_catalogue(200, 20, 30, seed=1)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    rows = synthetic.write_month_streamed(cat, "2019-11", 300, 2, a)
    synthetic.write_month_streamed(cat, "2019-11", 300, 2, b)
    assert a.read_bytes() == b.read_bytes()
    df = pd.read_csv(a)
    assert len(df) == rows and df.user_session.nunique() == 300
    assert df.event_time.str.startswith("2019-11").all()
    assert set(df.product_id) <= set(cat.product_id)
