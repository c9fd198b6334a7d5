"""The REES46 "eCommerce behavior data from multi category store" monthly CSVs: names, schema, discovery.

Upstream files are named ``2019-Oct.csv`` ... ``2020-Apr.csv`` (Kaggle ships them zipped as ``2019-Oct.csv.zip``).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zipfile
import zlib
from pathlib import Path

COLUMNS = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
           "user_id", "user_session")
KAGGLE_DATASET = "mkechinov/ecommerce-behavior-data-from-multi-category-store"
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".zip")


class SourceError(RuntimeError):
    """Raw data missing or malformed; the message names the file."""


def months_between(start: str, end: str) -> list[str]:
    """``["2019-10", "2019-11", ...]`` from ``start`` to ``end`` inclusive (both ``YYYY-MM``)."""
    y, m = map(int, start.split("-"))
    ey, em = map(int, end.split("-"))
    out = []
    while (y, m) <= (ey, em):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def month_file_stem(month: str) -> str:
    """``"2019-10"`` -> ``"2019-Oct"`` (the upstream file name without suffix)."""
    y, m = month.split("-")
    return f"{y}-{MONTH_NAMES[int(m) - 1]}"


def find_local_files(local_dir: str | Path, months: list[str]) -> list[Path]:
    """The file for each month in ``local_dir``; a clear error naming the expected names when one is missing."""
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise SourceError(f"data.local_dir: folder {local_dir} does not exist")
    found = []
    for month in months:
        stem = month_file_stem(month)
        candidates = [local_dir / f"{stem}{s}" for s in SUFFIXES if (local_dir / f"{stem}{s}").exists()]
        if not candidates:
            expected = " or ".join(f"{stem}{s}" for s in SUFFIXES)
            raise SourceError(f"{local_dir}: no file for month {month} (expected {expected})")
        found.append(candidates[0])
    return found


def open_text(path: Path):
    """Open a ``.csv``, ``.csv.gz`` or single-CSV ``.zip`` as a binary stream (inside ``readable(path)``, which turns
    a broken archive into a one-line error)."""
    name = path.name
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zip"):
        zf = zipfile.ZipFile(path)
        members = [n for n in zf.namelist() if n.endswith(".csv")]
        if len(members) != 1:
            raise SourceError(f"{path}: expected exactly one .csv inside the zip, found {members}")
        return zf.open(members[0])
    return open(path, "rb")


@contextlib.contextmanager
def readable(path: Path):
    """Turn a broken compressed file's exception into one line naming the file and what to do."""
    try:
        yield
    except gzip.BadGzipFile as e:
        raise SourceError(f"{path}: not a gzip file ({e}); a plain CSV must be named .csv") from None
    except zipfile.BadZipFile as e:
        raise SourceError(f"{path}: not a valid zip file ({e}); download it again") from None
    except (EOFError, zlib.error) as e:
        raise SourceError(f"{path}: the compressed data is corrupt or truncated ({e or type(e).__name__}); "
                          f"download it again") from None


def copy_as_csv(src: Path, dst: Path) -> None:
    """Stream ``src`` (csv / gz / zip) into the plain CSV ``dst``."""
    with readable(src), open_text(src) as fin, open(dst, "wb") as fout:
        while chunk := fin.read(1 << 22):
            try:
                fout.write(chunk)
            except OSError as e:  # a full disk: say which file
                raise OSError(e.errno, e.strerror, str(dst)) from None


def check_header(path: Path) -> None:
    """Fail with a clear message when the first line is not the upstream header. A UTF-8 byte-order mark (a CSV saved
    by Excel), CRLF line ends and quoted names are accepted."""
    with readable(path), open_text(path) as f:
        first = io.TextIOWrapper(f, encoding="utf-8", errors="replace").readline().lstrip("\ufeff").strip()
    cols = [c.strip().strip('"') for c in first.split(",")]
    if cols == list(COLUMNS):
        return
    if cols and cols[0][:4].isdigit():
        raise SourceError(
            f"{path}: the first line is data, not a header ({first[:60]!r}...). REES46 files start with the header "
            f"line {','.join(COLUMNS)}; add it (e.g. `sed -i '1i {','.join(COLUMNS)}' {path.name}`)")
    missing = [c for c in COLUMNS if c not in cols]
    extra = [c for c in cols if c not in COLUMNS]
    if missing:
        raise SourceError(f"{path}: missing column(s) {missing} in the header (found {cols})")
    raise SourceError(f"{path}: header must be exactly {list(COLUMNS)} in that order; found {cols} (unexpected {extra})")


def download_kaggle(months: list[str], dest: Path) -> list[Path]:
    """Download the monthly zips through the official Kaggle client, with the user's own credentials."""
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError:
        raise SourceError("data.source=kaggle needs the official client: `pip install kaggle`") from None
    api = KaggleApi()
    try:
        api.authenticate()
    except Exception as exc:  # the client raises OSError/ValueError variants depending on its version
        raise SourceError(
            "data.source=kaggle: no Kaggle credentials found. Put your API token in ~/.kaggle/kaggle.json or set "
            f"KAGGLE_USERNAME and KAGGLE_KEY ({exc})") from None
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for month in months:
        name = f"{month_file_stem(month)}.csv"
        api.dataset_download_file(KAGGLE_DATASET, name, path=str(dest), quiet=False)
        cands = [dest / f"{name}.zip", dest / name]
        got = next((c for c in cands if c.exists()), None)
        if got is None:
            raise SourceError(f"kaggle: {name} was not downloaded from {KAGGLE_DATASET}")
        paths.append(got)
    return paths
