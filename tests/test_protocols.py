"""The ``gru4rec_rees46`` protocol on the real REES46 October head: the data stages against an independent pandas
transcription of the official GRU4Rec preprocessing (``rees46_preproc.py``: views, user sessions cut at gaps over an
hour, consecutive repeats removed, sessions >= 2 and items >= 5 until stable, last-day split), with the test and
validation periods shortened to 10 minutes each because the head covers under 3 hours."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import OCT_HEAD, need, project_copy, sh

TEN_MINUTES = 10 / (24 * 60)


def official(csv) -> pd.DataFrame:
    """The official script's steps, in pandas (the order within a user: time, then file row)."""
    df = pd.read_csv(csv, on_bad_lines="skip", dtype={"product_id": "int64", "user_id": "int64"})
    df["time"] = pd.to_datetime(df.event_time.str.replace(" UTC", "")).astype("datetime64[s]").astype("int64")
    df["row"] = np.arange(len(df))
    view = df[df.event_type == "view"].sort_values(["user_id", "time", "row"])
    new = np.r_[True, (np.diff(view.time.values) > 3600) | (np.diff(view.user_id.values) != 0)]
    view = view.assign(sess=np.cumsum(new))
    dup = np.r_[False, (view.sess.values[1:] == view.sess.values[:-1])
                & (view.product_id.values[1:] == view.product_id.values[:-1])]
    view = view[~dup]
    prev = -1
    while len(view) != prev:
        prev = len(view)
        size = view.groupby("sess").size()
        view = view[view.sess.isin(size[size > 1].index)]
        support = view.groupby("product_id").size()
        view = view[view.product_id.isin(support[support >= 5].index)]
    return view


@pytest.mark.slow
def test_gru4rec_rees46_protocol_matches_the_official_preprocessing(tmp_path):
    csv = need(OCT_HEAD) / "2019-Oct.csv"
    proj, env = project_copy(tmp_path, {"protocol": "gru4rec_rees46",
                                        "data": {"source": "local", "local_dir": str(OCT_HEAD)},
                                        "split": {"test_days": TEN_MINUTES, "val_days": TEN_MINUTES}})
    sh(proj, env, "dvc", "repro", "build_graphs")
    ours = pd.read_parquet(proj / "data/interim/events.parquet")
    ref = official(csv)
    assert len(ours) == len(ref) and ours.user_session.nunique() == ref.sess.nunique()
    key = lambda d, s: sorted(d.groupby(s).product_id.apply(tuple).tolist())  # noqa: E731
    assert key(ours, "user_session") == key(ref, "sess")  # the very same sessions, click by click

    split = json.loads((proj / "metrics/split_report.json").read_text())
    end = int(ref.time.max()) + 1
    assert split["split_method"] == "last_days" and split["end"] == end
    assert split["test_cut"] == end - 600 and split["val_cut"] == end - 1200
    parts = {s: pd.read_parquet(proj / f"data/split/{s}.parquet") for s in ("train", "val", "test")}
    assert parts["train"].ts.max() < split["val_cut"] and parts["val"].ts.max() < split["test_cut"]
    assert parts["test"].groupby("session").ts.min().min() >= split["test_cut"]
    assert parts["val"].groupby("session").ts.min().min() >= split["val_cut"]
    assert set(parts["test"].item) <= set(parts["train"].item)  # ranked over the training catalogue
    graphs = json.loads((proj / "metrics/graphs_report.json").read_text())
    n_test = len(parts["test"]) - parts["test"].session.nunique()  # every position after the first is a target
    assert graphs["test"]["examples"] == n_test
