"""Outputs appear whole or not at all: each is written under a temporary name beside it (``.NAME.tmp``, in the same
folder, so the final rename is atomic) and renamed into place when complete. A kill leaves at most that temporary,
which the next write of the same output removes first; a failure removes it at once."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


def tmp_of(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def remove(path: Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(path: Path):
    """Yield the temporary path to write ``path``'s new content to (a file, or a folder the caller creates); on
    success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_of(path)
    remove(tmp)  # a killed run's leftover
    try:
        yield tmp
        if tmp.is_dir() and path.exists():
            remove(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            remove(tmp)


def write_text(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)
