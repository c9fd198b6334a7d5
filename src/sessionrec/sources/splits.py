"""Pre-split example files (``data.source: splits``), so every model is scored on the very examples of a reference.

A split folder (e.g. ``../shared/data/splits/rees46-oct-head``) holds, per split (``train``, ``test``):

* ``{split}.tsv``: one example per line, ``space-separated input item ids<TAB>target id``;
* ``{split}_sessions.tsv``: ``index<TAB>original session id<TAB>unix time<TAB>space-separated item ids``;
* ``{split}_meta.tsv``: per example (same order as ``{split}.tsv``) ``session index<TAB>unix time``;

and optionally ``item_map.tsv`` (``item id<TAB>original product_id``) to join REES46 side information, and
``item_categories.tsv`` (``original product id<TAB>category id``, DIGINETICA's ``product-categories.csv``).

The sessions are turned back into click events: click ``j < L`` of a session takes the time of its example with
``j`` input clicks, the last click the session's time. Every example that our all-prefix builder makes from these
sessions must equal the reference's line for line; the first mismatch is an error naming the file and line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from sessionrec.sources.rees46 import SourceError

SPLIT_NAMES = ("train", "test")
REQUIRED = tuple(f"{s}{suffix}" for s in SPLIT_NAMES for suffix in (".tsv", "_sessions.tsv", "_meta.tsv"))
OPTIONAL = ("item_map.tsv", "item_categories.tsv", "stats.json")


def copy_split_files(split_dir: str | Path, dst: Path) -> list[Path]:
    """Copy the split files into ``dst``; a missing required file is an error naming it."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise SourceError(f"data.splits_dir: {split_dir} is not a folder")
    missing = [f for f in REQUIRED if not (split_dir / f).is_file()]
    if missing:
        raise SourceError(f"data.splits_dir: {split_dir} lacks {missing} (expected {list(REQUIRED)})")
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for name in REQUIRED + OPTIONAL:
        if (split_dir / name).is_file():
            shutil.copyfile(split_dir / name, dst / name)
            out.append(dst / name)
    return out


def _lines(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line.strip()]


def _ints(text: str, path: Path, lineno: int) -> list[int]:
    try:
        return [int(x) for x in text.split()]
    except ValueError:
        raise SourceError(f"{path}:{lineno}: expected space-separated integer item ids, got {text[:80]!r}") from None


def read_split(folder: Path, split: str) -> dict:
    """Sessions of one split as click events, after checking them against the example file."""
    sess_path, meta_path, ex_path = (folder / f"{split}_sessions.tsv", folder / f"{split}_meta.tsv",
                                     folder / f"{split}.tsv")
    sessions = []
    for n, row in enumerate(_lines(sess_path), 1):
        if len(row) != 4:
            raise SourceError(f"{sess_path}:{n}: expected 4 tab-separated fields, got {len(row)}")
        sessions.append((row[1], int(float(row[2])), _ints(row[3], sess_path, n)))
    meta = [(int(r[0]), int(float(r[1]))) for r in _lines(meta_path)]
    examples = []
    for n, row in enumerate(_lines(ex_path), 1):
        if len(row) != 2:
            raise SourceError(f"{ex_path}:{n}: expected 'inputs<TAB>target', got {len(row)} field(s)")
        examples.append((_ints(row[0], ex_path, n), int(row[1])))
    if len(meta) != len(examples):
        raise SourceError(f"{meta_path}: {len(meta)} lines, but {ex_path} has {len(examples)} examples")
    # all prefixes, sessions in file order, longest prefix first: the order of the reference files
    line = 0
    times = []
    for idx, (_, t_end, items) in enumerate(sessions):
        t = [0] * len(items)
        t[-1] = t_end
        for length in range(len(items) - 1, 0, -1):
            if line >= len(examples):
                raise SourceError(f"{ex_path}: ends after {line} examples; session {idx} of {sess_path} needs more")
            want = (items[:length], items[length])
            if examples[line] != want or meta[line][0] != idx:
                raise SourceError(f"{ex_path}:{line + 1}: expected the prefix {want[0]} -> {want[1]} of session "
                                  f"{idx} in {sess_path.name}, found {examples[line][0]} -> {examples[line][1]}")
            t[length - 1] = meta[line][1]
            line += 1
        times.append(np.maximum.accumulate(t))  # click order is the file's; never let a time go backwards
    if line != len(examples):
        raise SourceError(f"{ex_path}: {len(examples) - line} example(s) after the last session's prefixes")
    lengths = np.array([len(s[2]) for s in sessions])
    return {"session_key": np.repeat(np.array([s[0] for s in sessions], dtype=object), lengths),
            "session_index": np.repeat(np.arange(len(sessions)), lengths),
            "item": np.concatenate([s[2] for s in sessions]).astype(np.int64),
            "ts": np.concatenate(times).astype(np.int64), "examples": len(examples)}


def _int_pairs(path: Path) -> dict[int, int] | None:
    """``first column -> second column`` of a two-column integer TSV, or None when the file is absent."""
    if not path.exists():
        return None
    return {int(r[0]): int(r[1]) for r in _lines(path)}


def read_item_map(folder: Path) -> dict[int, int] | None:
    """``item id -> original product id`` (``item_map.tsv``)."""
    return _int_pairs(folder / "item_map.tsv")


def read_item_categories(folder: Path) -> dict[int, int] | None:
    """``original product id -> category id`` (``item_categories.tsv``)."""
    return _int_pairs(folder / "item_categories.tsv")


def write_split_files(out_dir: Path, splits: dict, item_map: dict | None = None) -> None:
    """Write ``splits[name] = [(original session id, unix time, [item ids]), ...]`` in this module's format: every
    prefix an example, longest first; each example's time is its session's."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, sessions in splits.items():
        ex, meta, sess = [], [], []
        for idx, (sid, t, seq) in enumerate(sessions):
            sess.append(f"{idx}\t{sid}\t{int(t)}\t{' '.join(map(str, seq))}\n")
            for i in range(1, len(seq)):
                ex.append(f"{' '.join(map(str, seq[:-i]))}\t{seq[-i]}\n")
                meta.append(f"{idx}\t{int(t)}\n")
        (out_dir / f"{name}.tsv").write_text("".join(ex))
        (out_dir / f"{name}_meta.tsv").write_text("".join(meta))
        (out_dir / f"{name}_sessions.tsv").write_text("".join(sess))
    if item_map is not None:
        (out_dir / "item_map.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in sorted(item_map.items())))
