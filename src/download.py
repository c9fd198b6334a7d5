"""Stage ``download``: the chosen months of raw REES46 CSV (synthetic, local or Kaggle) into data/raw/."""

import logging

from sessionrec import paths
from sessionrec.cli import run
from sessionrec.params import load_params
from sessionrec.sources.fetch import fetch_raw


def main() -> None:
    params = load_params(paths.PARAMS)
    manifest = fetch_raw(params.data, paths.RAW)
    rows = sum(f["rows"] for f in manifest["files"])
    logging.info("download: %d file(s), %d rows from %s -> %s", len(manifest["files"]), rows, params.data.source,
                 paths.RAW)


if __name__ == "__main__":
    run(main)
