"""Stage ``train``: fit ``model.name`` on the train graphs and choose the epoch on validation; with ``model.refit``,
then train the chosen configuration on train + validation (that model is saved and tested)."""

import logging
import subprocess

from dvclive import Live

from sessionrec import distributed, paths
from sessionrec.cli import run, write_json
from sessionrec.params import load_params
from sessionrec.report import plot_curves
from sessionrec.runtime import set_threads
from sessionrec.training.checkpoint import save_checkpoint
from sessionrec.training.run import train_and_choose


def main() -> int | None:
    params = load_params(paths.PARAMS)
    command = distributed.relaunch_command(params.model.processes_per_node, params.model.nodes, __file__)
    if command:  # data-parallel: this script again, under torchrun (sessionrec.distributed)
        logging.info("train: %d process(es) x %d machine(s): %s", params.model.processes_per_node, params.model.nodes,
                     " ".join(command))
        return subprocess.run(command).returncode
    distributed.init_from_env()
    threads = set_threads(params.model.num_threads)
    if not distributed.is_main():  # the other ranks train alongside; rank 0 logs and writes every output
        logging.getLogger().setLevel(logging.WARNING)
        train_and_choose(params, resumable=True)
        distributed.close()
        return None
    with Live(str(paths.TRAIN_LIVE), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        t = train_and_choose(params, live=live, resumable=True)
    names = [m for m in ("val/MRR@20", "val/R@20", "val/loss", "train/loss") if m in t.history[0]]
    plot_curves({params.model.name: {m: list(enumerate(row[m] for row in t.history)) for m in names}},
                paths.TRAINING_PNG)
    epoch = t.parts or t.best_epoch  # the hybrid: each network's own best epoch
    save_checkpoint(paths.MODEL, t.config, t.state, {"epoch": epoch, "val": t.val, "refit": params.model.refit})
    write_json(paths.VAL_METRICS, {"best_epoch": epoch, **t.val})
    logging.info("train %s: best epoch %s, val R@20 %.4f, MRR@20 %.4f, %.1fs (%d threads, refit %s) -> %s",
                 params.model.name, epoch, t.val["R@20"], t.val["MRR@20"], t.seconds, threads,
                 params.model.refit, paths.MODEL)
    distributed.close()
    return None


if __name__ == "__main__":
    run(main)
