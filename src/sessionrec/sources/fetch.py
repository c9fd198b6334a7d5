"""The ``download`` step: put the chosen months of raw CSV into one folder, with a manifest."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

from tqdm import tqdm

from sessionrec import atomic, paths
from sessionrec.params import DataParams
from sessionrec.sources import SOURCES, rees46

# synthetic, splits and diginetica load pandas (half a second): each is imported where its source is chosen, so a
# run on the REES46 files starts without it

log = logging.getLogger(__name__)


def _sha256_rows(path: Path) -> tuple[int, str]:
    digest, newlines, last = hashlib.sha256(), 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(newlines + (0 if last == b"\n" else 1) - 1, 0), digest.hexdigest()


def _rees46_files(sources: list, months: list, raw_dir: Path) -> list:
    """Each month's file (plain, .gz or .zip) checked and copied as ``raw_dir/YYYY-Mon.csv``."""
    files = []
    for month, src in zip(months, tqdm(sources, desc="copy", unit="file")):
        rees46.check_header(src)
        dst = raw_dir / f"{rees46.month_file_stem(month)}.csv"
        rees46.copy_as_csv(src, dst)
        files.append((month, str(src), dst))
    return files


def _synthetic(params: DataParams, raw_dir: Path, months: list) -> tuple[list, list]:
    from sessionrec.sources import synthetic

    sp = params.synthetic
    cat = synthetic.make_catalogue(sp.n_items, sp.n_categories, sp.n_brands, sp.seed)
    files = []
    for i, month in enumerate(tqdm(months, desc="generate", unit="month")):
        dst = raw_dir / f"{rees46.month_file_stem(month)}.csv"
        if sp.stream:
            with tqdm(desc=f"generate {month}", unit=" rows", unit_scale=True, leave=False) as bar:
                synthetic.write_month_streamed(cat, month, sp.sessions_per_month, sp.seed + 1 + i, dst, progress=bar)
        else:
            synthetic.write_month(synthetic.generate_month(cat, month, sp.sessions_per_month, sp.seed + 1 + i), dst)
        files.append((month, f"synthetic(seed={sp.seed}{', stream' if sp.stream else ''})", dst))
    return files, []


def _local(params: DataParams, raw_dir: Path, months: list) -> tuple[list, list]:
    return _rees46_files(rees46.find_local_files(params.local_dir, months), months, raw_dir), []


def _kaggle(params: DataParams, raw_dir: Path, months: list) -> tuple[list, list]:
    downloads = raw_dir / ".kaggle"  # inside the stage's temporary folder: a kill leaks nothing
    files = _rees46_files(rees46.download_kaggle(months, downloads), months, raw_dir)
    shutil.rmtree(downloads)
    return files, []


def _splits(params: DataParams, raw_dir: Path, months: list) -> tuple[list, list]:
    """The split files, and the REES46 months as side information when ``data.local_dir`` is set."""
    from sessionrec.sources import splits

    split_files = splits.copy_split_files(params.splits_dir, raw_dir / "splits")
    side = rees46.find_local_files(params.local_dir, months) if params.local_dir else []
    return _rees46_files(side, months, raw_dir), [(p, str(Path(params.splits_dir) / p.name)) for p in split_files]


def _diginetica(params: DataParams, raw_dir: Path, months: list) -> tuple[list, list]:
    """The reference SR-GNN preprocessing, written as fixed split files, with the categories as side information."""
    from sessionrec.sources import diginetica

    views = diginetica.find_views(params.local_dir)
    report = diginetica.srgnn_preprocess(views, raw_dir / "splits")
    log.info("diginetica %s: %d rows, %d sessions -> %d train / %d test sessions, %d items", views.name,
             report["rows"], report["sessions"], report["train_sessions"], report["test_sessions"], report["items"])
    side = diginetica.write_item_categories(params.local_dir, raw_dir / "splits")
    if side["categories_file"]:
        log.info("diginetica %s: categories of %d items (%d without one)", side["categories_file"],
                 side["items_with_category"], side["items_without_category"])
    origin = f"SR-GNN preprocessing of {params.local_dir}"
    return [], [(p, origin) for p in sorted((raw_dir / "splits").glob("*.tsv"))]


# data.source -> (params, raw_dir, months) -> (REES46 month files [(month, origin, path)], split files [(path, origin)])
FETCHERS = {"synthetic": _synthetic, "local": _local, "kaggle": _kaggle, "splits": _splits,
            "diginetica": _diginetica}
assert set(FETCHERS) == set(SOURCES), "sources.SOURCES and sources.fetch.FETCHERS disagree"


def fetch_raw(params: DataParams, raw_dir: Path) -> dict:
    """Write one plain ``YYYY-Mon.csv`` per month (and a fixed-splits source's files under ``splits/``) into
    ``raw_dir`` and return the manifest.

    ``rows`` counts data lines after the header, a truncated last line included (the parser reports those).
    """
    months = rees46.months_between(params.start_month, params.end_month)
    params = dataclasses.replace(params, **{k: str(paths.user_path(getattr(params, k)))
                                            for k in ("local_dir", "splits_dir") if getattr(params, k)})
    with atomic.replacing(raw_dir) as tmp:  # the whole folder or nothing: a failure never leaves a partial file
        tmp.mkdir()
        files, split_files = FETCHERS[params.source](params, tmp, months)
        manifest = {"source": params.source, "files": [],
                    "split_files": [{"file": f"splits/{p.name}", "origin": origin, "sha256": _sha256_rows(p)[1]}
                                    for p, origin in split_files]}
        for month, origin, dst in files:
            rows, sha = _sha256_rows(dst)
            manifest["files"].append({"month": month, "file": dst.name, "origin": origin, "rows": rows,
                                      "sha256": sha})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
