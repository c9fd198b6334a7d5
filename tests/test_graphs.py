"""Session graphs (property-based, repeats included), the LMDB shard round trip and batching."""

from dataclasses import fields

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionrec.graphs.build import build_blocks, build_examples, session_graph
from sessionrec.graphs.store import GraphStore, pack, unpack, write_blocks, write_store

sequences = st.lists(st.integers(1, 6), min_size=1, max_size=30)  # small alphabet: many repeats


@given(sequences)
def test_alias_maps_back_to_the_sequence(seq):
    g = session_graph(seq)
    items = np.asarray(seq)
    nodes = items[g.nodes]  # product of each node
    assert (nodes[g.alias] == items).all()
    assert len(set(nodes.tolist())) == len(nodes) == len(set(seq))
    assert g.alias[0] == 0 and (np.diff(np.maximum.accumulate(g.alias)) <= 1).all()  # first-appearance order


@given(sequences)
def test_edges_are_the_distinct_consecutive_pairs(seq):
    g = session_graph(seq)
    nodes = np.asarray(seq)[g.nodes]
    got = {(int(nodes[s]), int(nodes[d])) for s, d in zip(g.src, g.dst)}
    assert got == set(zip(seq[:-1], seq[1:]))
    assert len(got) == len(g.src)  # each pair once


@given(sequences)
def test_in_out_weights_are_srgnn_normalised(seq):
    g = session_graph(seq)
    k = len(g.nodes)
    a = np.zeros((k, k))
    a[g.src, g.dst] = 1
    indeg, outdeg = a.sum(0), a.sum(1)
    assert np.allclose(g.w_in, 1 / indeg[g.dst]) and np.allclose(g.w_out, 1 / outdeg[g.src])
    for v in range(k):  # incoming weights of a node with in-edges sum to 1, outgoing likewise
        if indeg[v]:
            assert np.isclose(g.w_in[g.dst == v].sum(), 1)
        if outdeg[v]:
            assert np.isclose(g.w_out[g.src == v].sum(), 1)


def test_hand_computed_repeat_session():
    g = session_graph([7, 8, 7, 9, 9])
    assert g.alias.tolist() == [0, 1, 0, 2, 2]
    assert list(zip(g.src.tolist(), g.dst.tolist())) == [(0, 1), (1, 0), (0, 2), (2, 2)]
    assert g.w_out.tolist() == [0.5, 1.0, 0.5, 1.0] and g.w_in.tolist() == [1.0, 1.0, 0.5, 0.5]
    assert g.nodes.tolist() == [2, 1, 4]  # last occurrence of 7, 8, 9


def test_examples_prefixes_and_last():
    session = np.array([0, 0, 0, 1, 1])
    feats = {f: np.array([5, 6, 5, 7, 8]) for f in ("item", "category", "sub_category", "element", "brand")}
    feats["price"] = np.arange(5, dtype=np.float32)
    ex = list(build_examples(session, feats, "all_prefixes"))
    assert [(len(e["alias"]), e["target"]) for e in ex] == [(2, 5), (1, 6), (1, 8)]
    assert ex[0]["price"].tolist() == [0.0, 1.0]  # node features at last occurrence
    last = list(build_examples(session, feats, "last"))
    assert [(e["item"].tolist(), e["target"]) for e in last] == [([5, 6], 5), ([7], 8)]


def test_pack_is_zero_copy_and_exact():
    arrays = {"a": np.arange(5, dtype=np.int32), "b": np.linspace(0, 1, 3, dtype=np.float32)}
    buf = memoryview(pack(arrays))
    out = unpack(buf)
    assert out["a"].tolist() == list(range(5)) and np.allclose(out["b"], arrays["b"])
    assert not out["a"].flags.owndata


@settings(max_examples=20, deadline=None)
@given(st.lists(st.lists(st.integers(1, 9), min_size=2, max_size=12), min_size=1, max_size=25),
       st.integers(1, 7), st.randoms(use_true_random=False))
def test_lmdb_round_trip_and_batches(tmp_path_factory, sessions, shard_size, rnd):
    path = tmp_path_factory.mktemp("store") / "g.lmdb"
    session = np.repeat(np.arange(len(sessions)), [len(s) for s in sessions])
    items = np.concatenate(sessions)
    feats = {f: items * (i + 1) for i, f in enumerate(("item", "category", "sub_category", "element", "brand"))}
    feats["price"] = items.astype(np.float32) / 10
    examples = list(build_examples(session, feats, "all_prefixes"))
    assert write_store(path, iter(examples), shard_size) == len(examples)
    assert not path.with_name("g.lmdb-lock").exists()
    store = GraphStore(path)
    idx = list(range(len(examples)))
    rnd.shuffle(idx)
    b = store.batch(np.array(idx))
    for row, i in enumerate(idx):
        e = examples[i]
        seq = b.item[b.alias[row][b.mask[row]]]
        assert seq.tolist() == e["item"][e["alias"]].tolist()  # the input sequence, repeats included
        assert b.target[row].item() == e["target"]
        assert b.item[b.last[row]].item() == seq[-1].item()
        nodes = torch.nonzero(b.node_batch == row).flatten()
        assert b.item[nodes].tolist() == e["item"].tolist() and torch.allclose(b.price[nodes], torch.tensor(e["price"]))
        emask = (b.node_batch[b.edge_index[0]] == row)
        assert int(emask.sum()) == len(e["src"])
        assert (b.node_batch[b.edge_index[1][emask]] == row).all()
    store.close()



@settings(max_examples=10, deadline=None)
@given(st.integers(1, 60), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_a_batch_is_the_same_from_one_file_two_files_or_memory(tmp_path_factory, shard_size, cut_shards, seed):
    """Batching gathers every requested example from every shard at once (views across the memory map): the same
    examples give the same tensors from one store file, from the two files of a refit read as one (small shards
    inside LMDB leaf pages at any byte boundary and large ones on overflow pages), or from memory (the service)."""
    rng = np.random.default_rng(seed)
    session = np.repeat(np.arange(120), rng.integers(2, 9, 120))
    items = rng.integers(1, 40, len(session))
    feats = {f: items * (i + 1) for i, f in enumerate(("item", "category", "sub_category", "element", "brand"))}
    feats["price"] = rng.random(len(session)).astype(np.float32)
    examples = list(build_examples(session, feats, "all_prefixes"))
    cut = shard_size * min(cut_shards, (len(examples) - 1) // shard_size)  # the files cut where a shard ends
    d = tmp_path_factory.mktemp("stores")
    write_store(d / "all.lmdb", iter(examples), shard_size)
    write_store(d / "a.lmdb", iter(examples[:cut]), shard_size)
    write_store(d / "b.lmdb", iter(examples[cut:]), shard_size)
    one, two, memory = GraphStore(d / "all.lmdb"), GraphStore([d / "a.lmdb", d / "b.lmdb"]), \
        GraphStore.from_examples(examples)
    for _ in range(3):
        idx = rng.choice(len(examples), size=int(rng.integers(1, 200)), replace=False)
        # nodes come shard by shard, in request order within a shard; in memory all examples share one shard
        for a, b in ((one.batch(idx), two.batch(idx)), (one.batch(np.sort(idx)), memory.batch(np.sort(idx)))):
            for f in fields(a):
                assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name
    one.close()
    two.close()

def test_the_same_examples_give_byte_identical_stores(tmp_path):
    """DVC hashes the store: rebuilding unchanged data must not look like a change (and retrain every model)."""
    rng = np.random.default_rng(0)
    session = np.repeat(np.arange(400), 8)
    items = rng.integers(1, 500, len(session))
    feats = {f: items.copy() for f in ("item", "category", "sub_category", "element", "brand")}
    feats["price"] = rng.random(len(items)).astype(np.float32)
    for name in ("a", "b"):
        write_store(tmp_path / f"{name}.lmdb", build_examples(session, feats, "all_prefixes"), 97)
    assert (tmp_path / "a.lmdb").read_bytes() == (tmp_path / "b.lmdb").read_bytes()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=10), min_size=1, max_size=30),
       st.integers(1, 40), st.integers(1, 9), st.sampled_from(["all_prefixes", "last"]))
def test_vectorised_blocks_equal_per_session_graphs_at_any_block_size(tmp_path_factory, sessions, rows, shard, targets):
    """``build_blocks`` builds whole chunks of sessions at once; each example must be the graph of its own prefix
    (``session_graph``, one sequence at a time), and the store the same bytes whatever the chunking."""
    d = tmp_path_factory.mktemp("blocks")
    session = np.repeat(np.arange(len(sessions)) * 2, [len(s) for s in sessions])
    items = np.concatenate(sessions)
    feats = {f: items * (i + 1) for i, f in enumerate(("item", "category", "sub_category", "element", "brand"))}
    feats["price"] = items.astype(np.float32) / 10
    feats["ts"] = np.arange(len(items)) * 10
    lengths = [n for s in sessions for n in (([len(s) - 1] if targets == "last" else range(len(s) - 1, 0, -1))
                                             if len(s) > 1 else [])]
    starts = [a for a, s in zip(np.cumsum([0] + [len(s) for s in sessions]), sessions)
              for _ in (([1] if targets == "last" else range(len(s) - 1)) if len(s) > 1 else [])]
    examples = list(build_examples(session, feats, targets))
    assert len(examples) == len(lengths)
    for e, a, n in zip(examples, starts, lengths):
        g = session_graph(items[a:a + n])
        assert e["alias"].tolist() == g.alias.tolist() and e["src"].tolist() == g.src.tolist()
        assert e["dst"].tolist() == g.dst.tolist() and e["w_in"].tolist() == g.w_in.tolist()
        assert e["item"].tolist() == items[a + g.nodes].tolist() and e["target"] == items[a + n]
        assert e["time"] == (a + n - 1) * 10
    write_blocks(d / "small.lmdb", build_blocks(session, feats, targets, rows_per_block=rows), shard)
    write_blocks(d / "large.lmdb", build_blocks(session, feats, targets), shard)
    write_store(d / "examples.lmdb", iter(examples), shard)
    assert (d / "small.lmdb").read_bytes() == (d / "large.lmdb").read_bytes() == (d / "examples.lmdb").read_bytes()


def test_split_graphs_read_in_chunks_equal_one_read(tmp_path):
    """``write_split_graphs`` reading a few events at a time (sessions cut by a read carried to the next, one
    session longer than a read), on one thread or several, writes the store and counts of one whole read on one
    thread, byte for byte."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sessionrec.graphs.split_store import write_split_graphs

    rng = np.random.default_rng(0)
    lengths = np.r_[rng.integers(1, 8, 40), 25, rng.integers(1, 8, 10)]  # one session longer than any read
    session = np.repeat(np.arange(len(lengths)) * 3, lengths).astype(np.int32)
    items = rng.integers(1, 9, len(session)).astype(np.int32)
    pq.write_table(pa.table({"session": session, "ts": np.arange(len(session), dtype=np.int64), "item": items,
                             "category": items % 3, "sub_category": items % 2, "element": items % 4,
                             "brand": items % 5, "price": rng.random(len(session)).astype(np.float32)}),
                   tmp_path / "train.parquet", row_group_size=13)
    one = write_split_graphs(tmp_path / "train.parquet", tmp_path / "one.lmdb", "all_prefixes", 16, threads=1)
    expected = {"sessions": len(lengths), "examples": int(np.maximum(lengths - 1, 0).sum())}
    assert one == expected
    for rows, threads in ((6, 1), (6, 2), (5, 3), (1 << 18, 2)):  # chunks built on threads come back in order
        out = tmp_path / f"rows{rows}-threads{threads}.lmdb"
        assert write_split_graphs(tmp_path / "train.parquet", out, "all_prefixes", 16, rows=rows,
                                  threads=threads) == expected
        assert out.read_bytes() == (tmp_path / "one.lmdb").read_bytes(), (rows, threads)


def test_capped_epochs_walk_through_the_uncapped_shuffled_passes():
    """``model.epoch_examples``: epochs of N examples continue one stream of shuffled passes, pass p in the order
    uncapped epoch p + 1 has, so every example is seen once before any twice; N = the store's size is the uncapped
    order; no cap is the plain shuffle."""
    session = np.repeat(np.arange(5), 3)
    feats = {f: np.arange(1, 16) for f in ("item", "category", "sub_category", "element", "brand")}
    feats["price"] = np.ones(15, np.float32)
    store = GraphStore.from_examples(list(build_examples(session, feats, "all_prefixes")))
    n = len(store)
    assert n == 10

    def epoch(e, per_epoch=0, batch=3):
        batches = list(store.batch_order(batch, shuffle=True, seed=7, epoch=e, per_epoch=per_epoch))
        assert all(1 <= len(b) <= batch for b in batches)
        return np.concatenate(batches)

    passes = np.concatenate([epoch(1), epoch(2), epoch(3)])
    assert sorted(epoch(1)) == list(range(n)) and not np.array_equal(epoch(1), epoch(2))
    stream = np.concatenate([epoch(e, per_epoch=4) for e in range(1, 8)])  # 28 examples: epochs 3 and 5 span passes
    assert np.array_equal(stream, passes[:28])
    assert all(np.array_equal(epoch(e, per_epoch=n), epoch(e)) for e in (1, 2, 3))
    assert np.array_equal(epoch(1, per_epoch=25), passes[:25])
    with pytest.raises(ValueError, match="epoch >= 1"):
        epoch(0, per_epoch=4)


def test_a_sampled_store_reads_exactly_its_sample_in_store_order():
    """``model.val_examples``: ``GraphStore.sample(n, seed)`` reads n distinct examples drawn by ``seed``, in store
    order, as a store of only those examples would; 0 or the store's size leaves every example."""
    session = np.repeat(np.arange(12), np.arange(2, 14))
    feats = {f: np.arange(1, len(session) + 1) for f in ("item", "category", "sub_category", "element", "brand")}
    feats["price"] = np.ones(len(session), np.float32)
    examples = list(build_examples(session, feats, "all_prefixes"))
    n = len(examples)
    full = GraphStore.from_examples(examples)
    a, b, c = (GraphStore.from_examples(examples).sample(17, seed=s) for s in (3, 3, 4))
    assert len(a) == 17 and np.array_equal(a.index, b.index) and not np.array_equal(a.index, c.index)
    assert np.array_equal(a.index, np.unique(a.index)) and 0 <= a.index[0] and a.index[-1] < n
    alone = GraphStore.from_examples([examples[i] for i in a.index])
    got = [t for batch in a.iter_batches(5) for t in batch.target.tolist()]
    assert got == [t for batch in alone.iter_batches(5) for t in batch.target.tolist()]
    every = np.concatenate([batch.target.numpy() for batch in full.iter_batches(n)])
    assert got == every[a.index].tolist() and len(set(got)) > 1
    (x,), (y,) = list(a.iter_batches(17)), list(alone.iter_batches(17))
    for f in fields(x):
        assert torch.equal(getattr(x, f.name), getattr(y, f.name)), f.name
    shuffled = np.concatenate(list(a.batch_order(4, shuffle=True, seed=1, epoch=2)))
    assert sorted(shuffled) == a.index.tolist() and not np.array_equal(shuffled, a.index)
    for m in (0, n, n + 5):
        every = GraphStore.from_examples(examples).sample(m)
        assert len(every) == n and np.array_equal(np.concatenate(list(every.batch_order(7))), np.arange(n))
