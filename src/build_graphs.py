"""Stage ``build_graphs``: each split's sessions -> session-graph examples in packed LMDB shards."""

import logging

from sessionrec import paths
from sessionrec.cli import run, write_json
from sessionrec.graphs.split_store import write_split_graphs
from sessionrec.params import load_params
from sessionrec.prepare.split import SPLITS


def main() -> None:
    params = load_params(paths.PARAMS)
    report = {"targets": params.graphs.targets}
    for split in SPLITS:
        report[split] = write_split_graphs(paths.SPLIT / f"{split}.parquet", paths.graph_store(split),
                                           params.graphs.targets, params.graphs.shard_size)
    write_json(paths.GRAPHS_REPORT, report)
    logging.info("build_graphs (%s): %s examples", params.graphs.targets,
                 " / ".join(str(report[s]["examples"]) for s in SPLITS))


if __name__ == "__main__":
    run(main)
