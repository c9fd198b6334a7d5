"""Stage ``filter_encode``: raw CSVs -> filtered, encoded events (Parquet) and metrics/data_report.json."""

import json
import logging
import time

from sessionrec import paths
from sessionrec.cli import run, write_json
from sessionrec.params import load_params
from sessionrec.prepare.filter_encode import filter_encode
from sessionrec.prepare.fixed_splits import events_from_splits
from sessionrec.sources import FIXED_SPLITS, SOURCES


def main() -> None:
    t0 = time.perf_counter()
    params = load_params(paths.PARAMS)
    if not paths.MANIFEST.exists():
        raise FileNotFoundError(f"{paths.MANIFEST} not found (run the download stage)")
    manifest = json.loads(paths.MANIFEST.read_text())
    files = [paths.RAW / f["file"] for f in manifest["files"]]
    if SOURCES[manifest["source"]].yields == FIXED_SPLITS:  # the reference's own filtering and split: kept as given
        report = events_from_splits(paths.RAW / "splits", files, paths.INTERIM, params.filter_encode.memory_limit)
        write_json(paths.DATA_REPORT, report)
        logging.info("filter_encode (fixed splits): %d train / %d test sessions, %d items, %d without side "
                     "information", report["train_sessions"], report["test_sessions"], report["items"],
                     report["items_without_side_information"])
        return
    report = filter_encode(files, params.filter_encode, paths.INTERIM)
    write_json(paths.DATA_REPORT, report)
    # the time goes to the log only: the report DVC tracks stays identical for identical inputs
    logging.info("filter_encode: %d rows read, %d malformed, %d kept in %d sessions over %d items (%.1fs)",
                 report["rows_read"], report["malformed_lines_skipped"], report["rows_kept"], report["sessions"],
                 report["items"], time.perf_counter() - t0)


if __name__ == "__main__":
    run(main)
