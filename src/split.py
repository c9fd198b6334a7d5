"""Stage ``split``: sessions -> train / val / test; encoders and price scaler fitted on train only."""

import logging

from sessionrec import atomic, paths
from sessionrec.cli import run, write_json
from sessionrec.params import load_params
from sessionrec.prepare.split import split_events


def main() -> None:
    params = load_params(paths.PARAMS)
    sp = params.split
    with atomic.replacing(paths.SPLIT) as tmp:  # the whole folder or nothing
        tmp.mkdir()
        report = split_events(paths.EVENTS, tmp, sp.split_method, (sp.train_split, sp.val_split, sp.test_split),
                              sp.seed, sp.normalization_method, days=(sp.val_days, sp.test_days))
    write_json(paths.SPLIT_REPORT, report)
    logging.info("split (%s): %d / %d / %d sessions, %d catalogue items", report["split_method"], report["train"]["sessions"],
                 report["val"]["sessions"], report["test"]["sessions"], report["catalogue_items"])


if __name__ == "__main__":
    run(main)
