"""DIGINETICA (CIKM Cup 2016) ``train-item-views.csv`` under the reference SR-GNN preprocessing
(``datasets/preprocess.py`` of CRIPAC-DIG/SR-GNN), written as fixed split files that ``data.source: splits`` reads.

The input is ``;``-separated: ``session_id;user_id;item_id;timeframe;eventdate`` (the upstream header's camelCase
``sessionId;userId;itemId;...`` is accepted too). The steps, with the reference's quirks kept so the examples are the
same ones:

1. clicks grouped by session, ordered by ``timeframe`` (stable); a session's date is the ``eventdate`` of its last
   row in file order, as midnight UTC;
2. sessions of one click dropped; then items seen fewer than 5 times (counted over all remaining sessions, test
   ones included) removed, and sessions left with fewer than 2 clicks dropped; consecutive repeats stay;
3. the split date is the latest session date minus 7 days: sessions before it train, after it test, sessions dated
   exactly on it in neither;
4. sessions ordered by date (stable, file order within a date); items renumbered 1.. in order of first appearance in
   train; test clicks of other items dropped, then test sessions shorter than 2;
5. every prefix an example, longest first (``splits.write_split_files``).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from sessionrec.sources.rees46 import SourceError
from sessionrec.sources.splits import read_item_map, write_split_files

COLUMNS = {"session_id": ("session_id", "sessionId"), "item_id": ("item_id", "itemId"),
           "timeframe": ("timeframe",), "eventdate": ("eventdate",)}
MIN_ITEM_COUNT = 5
TEST_DAYS = 7


VIEW_FILES = ("train-item-views.csv", "sample_train-item-views.csv")
CATEGORIES_FILE = "product-categories.csv"  # itemId;categoryId


def write_item_categories(local_dir: str | Path, out_dir: Path) -> dict:
    """Side information: ``item_categories.tsv`` (``original item id<TAB>category id``) in ``out_dir`` for the items
    of its ``item_map.tsv``, from ``product-categories.csv`` in ``local_dir`` when that file is there. A malformed
    line is an error naming it; items without a category are counted (they get the ``unknown`` label)."""
    path = Path(local_dir) / CATEGORIES_FILE
    if not path.is_file():
        return {"categories_file": None}
    wanted = set(read_item_map(out_dir).values())
    found = {}
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["itemId", "categoryId"]:
            raise SourceError(f"{path}: expected the header 'itemId;categoryId', got {header!r}")
        for n, row in enumerate(reader, 2):
            try:
                item, cat = (int(x) for x in row)
            except ValueError:
                raise SourceError(f"{path}:{n}: expected 'itemId;categoryId' integers, got {';'.join(row)!r}") from None
            if item in wanted:
                found[item] = cat
    (out_dir / "item_categories.tsv").write_text("".join(f"{i}\t{c}\n" for i, c in sorted(found.items())))
    return {"categories_file": path.name, "items_with_category": len(found),
            "items_without_category": len(wanted - set(found))}


def find_views(local_dir: str | Path) -> Path:
    """The DIGINETICA views file in ``local_dir`` (the full one, else the SR-GNN sample)."""
    local_dir = Path(local_dir)
    for name in VIEW_FILES:
        if (local_dir / name).is_file():
            return local_dir / name
    raise SourceError(f"data.local_dir: {local_dir} has none of {list(VIEW_FILES)}")


def _day(text: str, path: Path, line: int) -> int:
    try:
        return int(dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc).timestamp())
    except ValueError:
        raise SourceError(f"{path}:{line}: eventdate {text!r} is not YYYY-MM-DD") from None


def read_views(path: Path) -> tuple[dict, dict, dict]:
    """``(clicks by session in timeframe order, date by session, report)``, sessions in file order."""
    clicks, dates = {}, {}
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader, None)
        if header is None:
            raise SourceError(f"{path}: empty file")
        col = {}
        for name, aliases in COLUMNS.items():
            found = [header.index(a) for a in aliases if a in header]
            if not found:
                raise SourceError(f"{path}: no {name} column in the header {header} (expected "
                                  "session_id;user_id;item_id;timeframe;eventdate)")
            col[name] = found[0]
        for line, row in enumerate(reader, 2):
            if len(row) != len(header):
                raise SourceError(f"{path}:{line}: {len(row)} fields instead of {len(header)}")
            s = row[col["session_id"]]
            try:
                frame = int(row[col["timeframe"]])
            except ValueError:
                raise SourceError(f"{path}:{line}: timeframe {row[col['timeframe']]!r} is not an integer") from None
            clicks.setdefault(s, []).append((row[col["item_id"]], frame))
            dates[s] = _day(row[col["eventdate"]], path, line)
    return {s: [i for i, _ in sorted(c, key=lambda x: x[1])] for s, c in clicks.items()}, dates, \
        {"rows": sum(len(c) for c in clicks.values()), "sessions": len(clicks)}


def srgnn_preprocess(path: Path, out_dir: Path) -> dict:
    """Write the reference's train / test split of ``path`` into ``out_dir``; return counts."""
    clicks, dates, report = read_views(Path(path))
    clicks = {s: c for s, c in clicks.items() if len(c) > 1}
    counts: dict = {}
    for c in clicks.values():
        for i in c:
            counts[i] = counts.get(i, 0) + 1
    kept = {}
    for s, c in clicks.items():
        c = [i for i in c if counts[i] >= MIN_ITEM_COUNT]
        if len(c) >= 2:
            kept[s] = c
    if not kept:
        raise SourceError(f"{path}: no session is left after the reference filters")
    split_date = max(dates[s] for s in kept) - 86400 * TEST_DAYS
    train = sorted(((s, dates[s]) for s in kept if dates[s] < split_date), key=lambda x: x[1])
    test = sorted(((s, dates[s]) for s in kept if dates[s] > split_date), key=lambda x: x[1])
    item_id: dict = {}
    train_sessions = []
    for s, d in train:
        seq = [item_id.setdefault(i, len(item_id) + 1) for i in kept[s]]
        train_sessions.append((s, d, seq))
    test_sessions = []
    for s, d in test:
        seq = [item_id[i] for i in kept[s] if i in item_id]
        if len(seq) >= 2:
            test_sessions.append((s, d, seq))
    write_split_files(out_dir, {"train": train_sessions, "test": test_sessions},
                      item_map={v: k for k, v in item_id.items()})
    report.update(split_date=split_date, train_sessions=len(train_sessions), test_sessions=len(test_sessions),
                  items=len(item_id))
    return report
