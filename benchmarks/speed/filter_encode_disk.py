"""``filter_encode`` on given CSV files: wall time, peak RSS and the peak size of its temporary work folder (staged
Parquet, DuckDB's database and spill files), polled once a second, against the size of the CSV read.

    python benchmarks/speed/filter_encode_disk.py data/raw/2019-Oct.csv data/raw/2019-Nov.csv \\
        [--memory-limit 8GB] [--output F.json]

For a full-size input, the CSVs of the scale run's `download` stage (docs/scale.md). The rest of ``filter_encode.*``
is params.yaml's default. Not a test: run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from sessionrec.params import FilterEncodeParams  # noqa: E402
from sessionrec.prepare.filter_encode import filter_encode  # noqa: E402


def folder_bytes(folder: Path) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(folder) for f in fs
               if os.path.exists(os.path.join(r, f)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path, nargs="+")
    ap.add_argument("--memory-limit", default="8GB")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fe-disk-") as out:
        work = Path(out) / ".tmp"  # filter_encode's work folder
        peak = {"bytes": 0, "files": ""}

        def poll() -> None:
            while True:
                n = folder_bytes(work)
                if n > peak["bytes"]:
                    peak.update(bytes=n, files=" ".join(sorted(os.listdir(work))) if work.exists() else "")
                time.sleep(1)

        threading.Thread(target=poll, daemon=True).start()
        t0 = time.perf_counter()
        report = filter_encode(args.csv, FilterEncodeParams(memory_limit=args.memory_limit), Path(out))
        seconds = time.perf_counter() - t0
    result = {"seconds": round(seconds, 1), "tmp_peak_mib": round(peak["bytes"] / 2**20), "at": peak["files"],
              "raw_mib": round(sum(p.stat().st_size for p in args.csv) / 2**20), "rows_kept": report["rows_kept"],
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "memory_limit": args.memory_limit}
    print(json.dumps(result))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"filter_encode: {result['seconds']} s, temporary disk {result['tmp_peak_mib']:,} MiB for "
          f"{result['raw_mib']:,} MiB of CSV ({result['tmp_peak_mib'] / result['raw_mib']:.2f}x)")


if __name__ == "__main__":
    main()
