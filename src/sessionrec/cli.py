"""What every stage script shares: logging set-up, clean error messages, JSON output."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import sys
from pathlib import Path

from sessionrec import atomic
from sessionrec.params import ParamsError
from sessionrec.sources.rees46 import SourceError

USER_ERRORS = (ParamsError, SourceError, ValueError, FileNotFoundError)


DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def run(main) -> None:
    """Run a stage's ``main``; a user error, or a full disk, prints one clear line and exits 2
    (``SESSIONREC_DEBUG=1`` re-raises); a non-zero status ``main`` returns is the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = main()
    except Exception as exc:
        message = user_message(exc)
        if message is None or os.environ.get("SESSIONREC_DEBUG"):
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    if code:  # a stage that ran others (train under torchrun) exits with their status
        sys.exit(code)


def user_message(exc: BaseException) -> str | None:
    """The one line for an error the user can act on; ``None`` for a bug (its traceback is the report)."""
    full = "free disk space (or raise the file size limit) and rerun; nothing half-written was kept"
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        where = f" while writing {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}: {full}"
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    # DuckDB, pyarrow and LMDB report a full disk in their own exception classes, with the OS's words
    library = type(exc).__module__.split(".")[0].lstrip("_") in ("duckdb", "pyarrow", "lmdb")
    if (library or isinstance(exc, OSError)) and DISK_FULL_WORDS.search(str(exc)):
        return f"{str(exc).splitlines()[0]}: {full}"
    return None


DISK_FULL_WORDS = re.compile(r"No space left on device|File too large|Disk quota exceeded|MDB_MAP_FULL")


def write_json(path: Path, obj) -> None:
    """``obj`` as JSON at ``path``, whole or not at all (``atomic.write_text``)."""
    atomic.write_text(Path(path), json.dumps(obj, indent=1, sort_keys=False) + "\n")
