"""A returning visitor's own history as a fallback: before the session says anything, products like those the visitor
viewed in the training sessions (item-kNN, cosine over co-occurrence in training sessions).

For history counts ``c_h`` and ``S_i`` the training sessions that viewed item ``i``:

    score(i) = sum_h c_h |S_h & S_i| / sqrt(|S_h| |S_i|)

computed as two sparse products (items x sessions), no item x item matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from sessionrec import paths


class VisitorHistory:
    def __init__(self, session: np.ndarray, item: np.ndarray, user_of_session: dict, n_items: int):
        """``session``, ``item``: the training clicks; ``user_of_session``: session id -> user id."""
        sessions, col = np.unique(session, return_inverse=True)
        x = sp.csr_matrix((np.ones(len(item)), (item, col)), shape=(n_items, len(sessions)))
        x.data[:] = 1.0  # viewed or not (duplicates were summed)
        self.x = x
        deg = np.asarray(x.sum(axis=1)).ravel()
        self.inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1)), 0.0)
        users = np.array([user_of_session.get(int(s), -1) for s in sessions])[col]  # (clicks,) user of each click
        known = users >= 0
        user_ids, row = np.unique(users[known], return_inverse=True)
        self.row_of = {int(u): r for r, u in enumerate(user_ids)}
        # (U, N) views per user and item, sparse: a dense row per user would cost U x N floats
        self.views = sp.csr_matrix((np.ones(int(known.sum())), (row, np.asarray(item)[known])),
                                   shape=(len(user_ids), n_items))

    @classmethod
    def from_tables(cls, train, events, n_items: int) -> "VisitorHistory":
        """From the training clicks (a table with ``session``, ``item``) and the filtered events (``session``,
        ``user_id``), both pyarrow tables."""
        user_of = dict(zip(events.column("session").to_pylist(), events.column("user_id").to_pylist()))
        return cls(train.column("session").to_numpy(), train.column("item").to_numpy(), user_of, n_items)

    @classmethod
    def from_pipeline(cls, root: Path, n_items: int) -> "VisitorHistory":
        """From the split's training clicks and the users of ``data/interim/events.parquet`` under ``root``."""
        return cls.from_tables(pq.read_table(root / paths.SPLIT / "train.parquet", columns=["session", "item"]),
                               pq.read_table(root / paths.EVENTS, columns=["session", "user_id"]), n_items)

    def scores(self, user_id: int | None) -> np.ndarray | None:
        """(N,) item-kNN scores from ``user_id``'s training views; None for a visitor without any."""
        r = self.row_of.get(user_id) if user_id is not None else None
        if r is None:
            return None
        weighted = self.views[r].multiply(self.inv_sqrt).tocsr()  # (1, N): c_h / sqrt|S_h|
        per_session = (weighted @ self.x).toarray().ravel()  # (S,)
        return (self.x @ per_session) * self.inv_sqrt  # (N,)
