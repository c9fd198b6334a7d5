"""The ``download`` step: put the chosen months of raw CSV into one folder, with a manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from tqdm import tqdm

from sessionrec.params import DataParams
from sessionrec.sources import diginetica, rees46, splits, synthetic

log = logging.getLogger(__name__)


def _sha256_rows(path: Path) -> tuple[int, str]:
    digest, newlines, last = hashlib.sha256(), 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(newlines + (0 if last == b"\n" else 1) - 1, 0), digest.hexdigest()


def fetch_raw(params: DataParams, raw_dir: Path) -> dict:
    """Write one plain ``YYYY-Mon.csv`` per month into ``raw_dir`` and return the manifest.

    ``rows`` counts data lines after the header, a truncated last line included (the parser reports those).
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    for old in raw_dir.glob("*.csv"):
        old.unlink()
    if (raw_dir / "splits").exists():
        shutil.rmtree(raw_dir / "splits")
    months = rees46.months_between(params.start_month, params.end_month)
    files = []
    split_files = []
    if params.source == "splits":
        split_files = splits.copy_split_files(params.splits_dir, raw_dir / "splits")
    elif params.source == "diginetica":  # the reference SR-GNN preprocessing, written as fixed split files
        views = diginetica.find_views(params.local_dir)
        report = diginetica.srgnn_preprocess(views, raw_dir / "splits")
        log.info("diginetica %s: %d rows, %d sessions -> %d train / %d test sessions, %d items", views.name,
                 report["rows"], report["sessions"], report["train_sessions"], report["test_sessions"],
                 report["items"])
        side = diginetica.write_item_categories(params.local_dir, raw_dir / "splits")
        if side["categories_file"]:
            log.info("diginetica %s: categories of %d items (%d without one)", side["categories_file"],
                     side["items_with_category"], side["items_without_category"])
        split_files = sorted((raw_dir / "splits").glob("*.tsv"))
    if params.source == "synthetic":
        sp = params.synthetic
        cat = synthetic.make_catalogue(sp.n_items, sp.n_categories, sp.n_brands, sp.seed)
        for i, month in enumerate(tqdm(months, desc="generate", unit="month")):
            dst = raw_dir / f"{rees46.month_file_stem(month)}.csv"
            synthetic.write_month(synthetic.generate_month(cat, month, sp.sessions_per_month, sp.seed + 1 + i), dst)
            files.append((month, f"synthetic(seed={sp.seed})", dst))
    else:  # REES46 months: the data itself (local, kaggle) or side information for fixed splits
        if params.source == "kaggle":
            sources = rees46.download_kaggle(months, Path(tempfile.mkdtemp(prefix="rees46-")))
        elif params.source == "local" or (params.source == "splits" and params.local_dir):
            sources = rees46.find_local_files(params.local_dir, months)
        else:
            sources = []
        for month, src in zip(months, tqdm(sources, desc="copy", unit="file")):
            rees46.check_header(src)
            dst = raw_dir / f"{rees46.month_file_stem(month)}.csv"
            rees46.copy_as_csv(src, dst)
            files.append((month, str(src), dst))
    manifest = {"source": params.source, "files": [],
                "split_files": [{"file": f"splits/{p.name}", "origin": str(Path(params.splits_dir) / p.name)
                                 if params.source == "splits" else f"SR-GNN preprocessing of {params.local_dir}",
                                 "sha256": _sha256_rows(p)[1]} for p in split_files]}
    for month, origin, dst in files:
        rows, sha = _sha256_rows(dst)
        manifest["files"].append({"month": month, "file": dst.name, "origin": origin, "rows": rows, "sha256": sha})
    (raw_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
