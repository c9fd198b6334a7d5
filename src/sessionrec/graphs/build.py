"""Session graphs (SR-GNN, Wu et al., AAAI 2019, Sec. 3.2), built once in the data layer.

For an input sequence :math:`s = (v_{s,1}, \\dots, v_{s,L})`:

* nodes: the distinct products of ``s`` in order of first appearance (``K <= L`` of them);
* ``alias[t]``: the node of position ``t``, so ``nodes[alias]`` gives ``s`` back, repeats included (the original design
  indexed edges by unique products but node rows by event, which is wrong as soon as a product repeats);
* directed edges ``(alias[t], alias[t+1])`` for consecutive clicks, each distinct pair once (a self-loop when a product
  is clicked twice in a row);
* SR-GNN's normalised weights: ``w_in = 1 / indeg(dst)`` and ``w_out = 1 / outdeg(src)``, degrees over distinct edges.
  Aggregating ``w_in * h_src`` at ``dst`` gives :math:`A^{in}_{s} H`, ``w_out * h_dst`` at ``src`` gives
  :math:`A^{out}_{s} H` of the paper.

Node features are the product and its category / sub_category / element / brand / scaled price at the node's
last occurrence in the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NODE_INT_FEATURES = ("item", "category", "sub_category", "element", "brand")


@dataclass
class SessionGraph:
    nodes: np.ndarray  # (K,) row index into the input positions: the position of the node's last occurrence
    alias: np.ndarray  # (L,) node of each position
    src: np.ndarray  # (E,)
    dst: np.ndarray  # (E,)
    w_in: np.ndarray  # (E,)
    w_out: np.ndarray  # (E,)


def session_graph(items) -> SessionGraph:
    """Graph of one input sequence ``items`` (a sequence of product ids)."""
    node_of: dict = {}
    alias = []
    last_pos = []
    for t, it in enumerate(items):
        k = node_of.setdefault(int(it), len(node_of))
        alias.append(k)
        if k == len(last_pos):
            last_pos.append(t)
        else:
            last_pos[k] = t
    pairs = list(dict.fromkeys(zip(alias[:-1], alias[1:])))
    src = np.fromiter((p[0] for p in pairs), np.int32, len(pairs))
    dst = np.fromiter((p[1] for p in pairs), np.int32, len(pairs))
    n = len(node_of)
    indeg = np.bincount(dst, minlength=n)
    outdeg = np.bincount(src, minlength=n)
    return SessionGraph(
        nodes=np.asarray(last_pos, np.int64), alias=np.asarray(alias, np.int32), src=src, dst=dst,
        w_in=(1.0 / indeg[dst]).astype(np.float32) if len(dst) else np.zeros(0, np.float32),
        w_out=(1.0 / outdeg[src]).astype(np.float32) if len(src) else np.zeros(0, np.float32))


def examples_of_session(length: int, targets: str) -> list[int]:
    """Input lengths of the examples a session of ``length`` events yields (target = the next event)."""
    if length < 2:
        return []
    return [length - 1] if targets == "last" else list(range(length - 1, 0, -1))


def build_examples(session: np.ndarray, features: dict, targets: str, progress=None):
    """Yield one dict of numpy arrays per example, sessions in file order, longest prefix first.

    ``session`` (n,) groups consecutive rows (sorted by session, time); ``features`` maps each of
    ``NODE_INT_FEATURES`` and ``price`` to an (n,) array, and optionally ``ts`` (unix seconds; an example's ``time``
    is that of its last input click, 0 without ``ts``).
    """
    bounds = np.flatnonzero(np.diff(session)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(session)]])
    items = features["item"]
    for a, b in zip(starts, ends):
        for length in examples_of_session(b - a, targets):
            g = session_graph(items[a:a + length])
            rows = a + g.nodes
            yield {
                **{f: features[f][rows] for f in (*NODE_INT_FEATURES, "price")},
                "alias": g.alias, "src": g.src, "dst": g.dst, "w_in": g.w_in, "w_out": g.w_out,
                "target": int(items[a + length]), "session": int(session[a]),
                "time": int(features["ts"][a + length - 1]) if "ts" in features else 0,
            }
        if progress is not None:
            progress.update(1)
