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

from sessionrec.graphs.ranges import ranges

NODE_INT_FEATURES = ("item", "category", "sub_category", "element", "brand")
NODE_ARRAYS = (*NODE_INT_FEATURES, "price")
FLOAT_ARRAYS = ("price", "w_in", "w_out")
PTRS = {"node_ptr": NODE_ARRAYS, "seq_ptr": ("alias",), "edge_ptr": ("src", "dst", "w_in", "w_out")}


@dataclass
class SessionGraph:
    nodes: np.ndarray  # (K,) row index into the input positions: the position of the node's last occurrence
    alias: np.ndarray  # (L,) node of each position
    src: np.ndarray  # (E,)
    dst: np.ndarray  # (E,)
    w_in: np.ndarray  # (E,)
    w_out: np.ndarray  # (E,)


def session_graph(items) -> SessionGraph:
    """Graph of one input sequence ``items`` (product ids): the one example of a session of ``items`` and a target,
    built by ``graph_block`` as every example is."""
    rows = np.append(np.asarray(items, np.int64), 0)  # a placeholder target after the last click
    b = graph_block(np.zeros(len(rows), np.int64), {"item": rows}, "last", node_features=())
    return SessionGraph(nodes=b["node_row"], alias=b["alias"], src=b["src"], dst=b["dst"], w_in=b["w_in"],
                        w_out=b["w_out"])


def examples_of_session(length: int, targets: str) -> list[int]:
    """Input lengths of the examples a session of ``length`` events yields (target = the next event)."""
    if length < 2:
        return []
    return [length - 1] if targets == "last" else list(range(length - 1, 0, -1))


def _first_and_next(n: int, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows ``0..n-1`` grouped by equal ``keys``: each row's first row of its group, and the next row of its group
    (``n`` for the last)."""
    order = np.lexsort((np.arange(n), *reversed(keys)))
    same = np.zeros(n, bool)
    if n > 1:
        same[1:] = np.logical_and.reduce([k[order][1:] == k[order][:-1] for k in keys])
    start = np.maximum.accumulate(np.where(same, 0, np.arange(n)))
    first, nxt = np.empty(n, np.int64), np.full(n, n, np.int64)
    first[order] = order[start]
    follows = np.flatnonzero(same)
    nxt[order[follows - 1]] = order[follows]
    return first, nxt


def graph_block(session: np.ndarray, features: dict, targets: str,
                node_features: tuple = NODE_ARRAYS) -> dict:
    """Every example of the rows ``session`` (sorted by session, time; whole sessions), sessions in order, longest
    prefix first, as one block of CSR arrays: ``node_ptr`` / ``seq_ptr`` / ``edge_ptr`` (per-example offsets, from 0)
    into the node arrays (``node_features`` and ``node_row``, the row of each node's last occurrence), ``alias`` and
    the edge arrays (``src``, ``dst``, ``w_in``, ``w_out``), and per example ``target``, ``session`` and ``time``
    (of the last input click; 0 without ``features["ts"]``). Dtypes are the store's: int32, float32 for ``price``
    and the weights, int64 for ``time``.

    Vectorised over all the block's examples with numpy (no Python loop per example). Within a session, a row's
    node and whether its consecutive pair is new do not depend on the prefix: the node is the rank of its product's
    first occurrence, and a prefix holds the pairs that first occur inside it. Only which occurrence is a node's last,
    and the degrees, depend on the prefix, and they are computed per (example, node)."""
    session = np.asarray(session)
    items = np.asarray(features["item"])
    n = len(session)
    bounds = np.flatnonzero(np.diff(session)) + 1 if n else np.zeros(0, np.int64)
    starts = np.concatenate([[0], bounds]).astype(np.int64) if n else np.zeros(0, np.int64)
    lengths = np.diff(np.concatenate([starts, [n]])).astype(np.int64)
    sid = np.repeat(np.arange(len(starts)), lengths)  # session index of each row
    # node of each row: the rank of its product's first occurrence in the session
    first, nxt = _first_and_next(n, sid, items)
    is_first = first == np.arange(n)
    cum = np.cumsum(is_first)
    alias = cum[first] - cum[starts][sid]  # 0-based
    # whether the pair (row, row + 1) occurs for the first time in its session
    pair_new = np.zeros(n, bool)
    inner = np.flatnonzero(np.r_[sid[1:] == sid[:-1], False])  # rows with a next row in the same session
    if len(inner):
        pfirst, _ = _first_and_next(len(inner), sid[inner], alias[inner], alias[inner + 1])
        pair_new[inner] = pfirst == np.arange(len(inner))
    # examples: per session, input lengths L-1 ... 1 (or only L-1)
    if targets == "last":
        ex_len = lengths - 1
        keep = ex_len >= 1
        ex_sess, ex_len = np.flatnonzero(keep), ex_len[keep]
    else:
        counts = np.maximum(lengths - 1, 0)
        ex_sess = np.repeat(np.arange(len(starts)), counts)
        ex_len = lengths[ex_sess] - 1 - (np.arange(len(ex_sess)) - np.repeat(np.cumsum(counts) - counts, counts))
    ex_start = starts[ex_sess]
    ex_end = ex_start + ex_len  # the target row
    n_ex = len(ex_sess)
    # every example's input rows, flattened
    ex_of_pos = np.repeat(np.arange(n_ex), ex_len)
    pos = ranges(ex_start, ex_len)
    # nodes: the rows whose next occurrence is at or past the example's end, in node order
    last = nxt[pos] >= ex_end[ex_of_pos]
    node_pos, node_ex = pos[last], ex_of_pos[last]
    order = np.lexsort((alias[node_pos], node_ex))
    node_pos, node_ex = node_pos[order], node_ex[order]
    # edges: the rows inside the example whose pair is new, in row order
    e = pair_new[pos] & (pos + 1 < ex_end[ex_of_pos])
    edge_pos, edge_ex = pos[e], ex_of_pos[e]
    src, dst = alias[edge_pos], alias[edge_pos + 1]
    width = int(alias.max()) + 1 if n else 1

    def degree(node):  # per edge: how many of its example's edges share ``node``
        _, inv, cnt = np.unique(edge_ex * width + node, return_inverse=True, return_counts=True)
        return cnt[inv]

    def ptr(ex):
        return np.concatenate([[0], np.cumsum(np.bincount(ex, minlength=n_ex))]).astype(np.int32)

    block = {"node_ptr": ptr(node_ex), "seq_ptr": ptr(ex_of_pos), "edge_ptr": ptr(edge_ex),
             **{f: np.asarray(features[f])[node_pos].astype(np.float32 if f in FLOAT_ARRAYS else np.int32)
                for f in node_features},
             "alias": alias[pos].astype(np.int32), "src": src.astype(np.int32), "dst": dst.astype(np.int32),
             "w_in": (1.0 / degree(dst)).astype(np.float32), "w_out": (1.0 / degree(src)).astype(np.float32),
             "target": items[ex_end].astype(np.int32), "session": session[ex_start].astype(np.int32),
             "time": (np.asarray(features["ts"])[ex_end - 1] if "ts" in features else np.zeros(n_ex)).astype(np.int64),
             "node_row": node_pos - ex_start[node_ex]}
    return block


def block_len(block: dict) -> int:
    return len(block["target"])


def slice_block(block: dict, i: int, j: int) -> dict:
    """Examples ``i:j`` of ``block``, offsets rebased to 0."""
    out = {}
    for p, names in PTRS.items():
        ptr = block[p]
        a, b = int(ptr[i]), int(ptr[j])
        out[p] = (ptr[i:j + 1] - ptr[i]).astype(np.int32)
        for name in names:
            if name in block:
                out[name] = block[name][a:b]
        if p == "node_ptr" and "node_row" in block:
            out["node_row"] = block["node_row"][a:b]
    for name in ("target", "session", "time"):
        out[name] = block[name][i:j]
    return out


def example_block(example: dict) -> dict:
    """One example dict (what ``build_examples`` yields) as a block of one example."""
    return {"node_ptr": np.array([0, len(example["item"])]), "seq_ptr": np.array([0, len(example["alias"])]),
            "edge_ptr": np.array([0, len(example["src"])]),
            **{k: example[k] for k in (*NODE_ARRAYS, "alias", "src", "dst", "w_in", "w_out")},
            **{k: np.array([example[k]]) for k in ("target", "session", "time")}}


def concat_blocks(blocks: list[dict]) -> dict:
    out = {}
    for p in PTRS:
        sizes = np.concatenate([np.diff(b[p]) for b in blocks])
        out[p] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    for name in blocks[0]:
        if name not in PTRS:
            out[name] = np.concatenate([b[name] for b in blocks])
    return out


def build_blocks(session: np.ndarray, features: dict, targets: str, rows_per_block: int = 1 << 16, progress=None):
    """``graph_block`` over consecutive groups of whole sessions of about ``rows_per_block`` rows (bounded memory:
    all-prefix examples hold O(L^2) positions per session)."""
    n = len(session)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(session)) + 1, [n]]) if n else np.zeros(1, np.int64)
    cuts = np.unique(np.concatenate([bounds[np.searchsorted(bounds, np.arange(0, n, rows_per_block))], [n]]))
    for a, b in zip(cuts[:-1], cuts[1:]):
        yield graph_block(session[a:b], {f: np.asarray(v)[a:b] for f, v in features.items()}, targets)
        if progress is not None:
            progress.update(int(np.count_nonzero(np.diff(session[a:b])) + 1))


def build_examples(session: np.ndarray, features: dict, targets: str, progress=None):
    """Yield one dict of numpy arrays per example (what a store holds of it), sessions in file order, longest prefix
    first; ``features`` maps each of ``NODE_INT_FEATURES`` and ``price`` (and optionally ``ts``) to an (n,) array.
    A view of ``build_blocks``: one implementation of the graph."""
    for block in build_blocks(session, features, targets, progress=progress):
        for i in range(block_len(block)):
            ex = slice_block(block, i, i + 1)
            yield {**{k: v for k, v in ex.items() if k not in (*PTRS, "node_row", "target", "session", "time")},
                   "target": int(ex["target"][0]), "session": int(ex["session"][0]), "time": int(ex["time"][0])}
