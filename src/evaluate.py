"""Stage ``evaluate``: the selected checkpoint on the test split, touched once; metrics and plots."""

import logging

from sessionrec import paths
from sessionrec.cli import run, write_json
from sessionrec.graphs.store import GraphStore
from sessionrec.params import load_params
from sessionrec.report import write_test_plots
from sessionrec.runtime import pick_device
from sessionrec.scoring import evaluate_test, sample_test
from sessionrec.training.checkpoint import load_model


def main() -> None:
    params = load_params(paths.PARAMS)
    ep = params.evaluate
    device = pick_device()
    model, ckpt = load_model(paths.MODEL, device)
    test = GraphStore(paths.graph_store("test"))
    total = sample_test(test, ep.test_examples)
    if len(test) < total:
        logging.info("evaluate: a seeded sample of %d of the %d test examples (evaluate.test_examples)", len(test),
                     total)
    metrics, per_example = evaluate_test(model.to(device), test, ep.top_k, ep.ties, ep.batch_size, device,
                                         ckpt["config"]["n_items"], total)
    write_json(paths.TEST_METRICS, metrics)
    write_test_plots(paths.PLOTS, metrics, per_example, ep.top_k)
    logging.info("evaluate %s on %d test examples: R@20 %.4f, MRR@20 %.4f, NDCG@20 %.4f, coverage@20 %.4f",
                 ckpt["config"]["name"], metrics["examples"], metrics["R@20"], metrics["MRR@20"], metrics["NDCG@20"],
                 metrics["coverage@20"])


if __name__ == "__main__":
    run(main)
