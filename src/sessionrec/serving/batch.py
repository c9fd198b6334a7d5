"""Offline batch recommendation: the sessions of a REES46-format CSV, each answered by ``Recommender.recommend`` (the
service's own code path)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sessionrec.serving.recommender import Click

NEEDED = ("event_time", "event_type", "product_id", "user_session")


def read_sessions(path: Path) -> list[tuple[str, list[Click]]]:
    """``[(user_session, clicks in time order)]``; a missing column or an unreadable value is an error naming it."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: input file not found")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in NEEDED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    df = df[df["event_type"] == "view"]
    pid = pd.to_numeric(df["product_id"], errors="coerce")
    ts = pd.to_datetime(df["event_time"].str.replace(" UTC", "+00:00", regex=False), utc=True, errors="coerce",
                        format="ISO8601")
    for name, col in (("product_id", pid), ("event_time", ts)):
        if col.isna().any():
            line = int(col.isna().to_numpy().argmax())
            raise ValueError(f"{path}:{df.index[line] + 2}: column {name}: cannot read {df[name].iloc[line]!r}")
    df = df.assign(pid=pid.astype("int64"), t=ts.astype("int64") // 10**9)
    df = df.sort_values(["t"], kind="stable")
    order = list(dict.fromkeys(df.loc[df.index.sort_values(), "user_session"]))
    groups = {s: g for s, g in df.groupby("user_session", sort=False)}
    return [(s, [Click(int(p), float(t)) for p, t in zip(groups[s]["pid"], groups[s]["t"])]) for s in order]
