"""The training step's device options on CPU: bfloat16 autocast (``model.precision``) and the batch prefetch a GPU run
uses, each against the plain step on the same batches."""

import dataclasses
import time

import pytest
import torch

from conftest import planted_store
from quality import config, train_config
from sessionrec.graphs.batch import prefetched
from sessionrec.training.loop import TrainStep, new_model, train_epoch
from sessionrec.training.loss import FullSoftmax


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return planted_store(tmp_path_factory.mktemp("step") / "train.lmdb", 200, 1)[0]


def one_epoch(store, name: str, **knobs) -> tuple[float, dict]:
    cfg = dataclasses.replace(train_config(0), **{k: v for k, v in knobs.items() if k != "prefetch"})
    model = new_model(config(name), cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss = train_epoch(model, opt, store, cfg, 1, torch.device("cpu"), prefetch=knobs.get("prefetch"))
    return loss, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["gru4rec", "graph_with_embeddings_and_attention"])
def test_bf16_autocast_trains_close_to_fp32_but_not_identically(store, name):
    """bf16 changes the arithmetic (so autocast is on) and stays within 2% of fp32's mean loss over an epoch."""
    fp32, w32 = one_epoch(store, name)
    bf16, w16 = one_epoch(store, name, precision="bf16")
    assert bf16 != fp32 and abs(bf16 - fp32) / fp32 < 0.02
    assert all(v.dtype == w32[k].dtype for k, v in w16.items())  # the weights themselves stay fp32


def test_prefetched_batches_train_exactly_as_the_plain_loop(store):
    plain, w0 = one_epoch(store, "srgnn", prefetch=False)
    ahead, w1 = one_epoch(store, "srgnn", prefetch=True)
    assert plain == ahead and all(torch.equal(v, w1[k]) for k, v in w0.items())


def test_prefetch_keeps_order_raises_the_producers_error_and_stops_with_the_consumer():
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("bad record 2")

    got = []
    with pytest.raises(ValueError, match="bad record 2"):
        for x in prefetched(failing()):
            got.append(x)
    assert got == [1]
    made = []

    def counting():
        for i in range(10_000):
            made.append(i)
            yield i

    it = prefetched(counting(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # the consumer stops: the producer stops within a few items, not at 10,000
    time.sleep(0.5)
    assert len(made) < 10


def test_epoch_examples_trains_that_many_examples_an_epoch(store):
    """``model.epoch_examples``: an epoch steps over exactly N examples (the last batch cut to fit); N = the whole
    store trains exactly as no cap."""
    seen = []

    def counting(model, batch):
        seen.append(batch.size)
        return FullSoftmax()(model, batch)

    cfg = dataclasses.replace(train_config(0), epoch_examples=150)
    model = new_model(config("gru4rec"), cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    train_epoch(model, opt, store, cfg, 1, torch.device("cpu"), TrainStep(model, counting))
    assert sum(seen) == 150 and seen[-1] == 150 % cfg.batch_size and len(store) != 150
    whole, w0 = one_epoch(store, "gru4rec")
    capped, w1 = one_epoch(store, "gru4rec", epoch_examples=len(store))
    assert whole == capped and all(torch.equal(v, w1[k]) for k, v in w0.items())
