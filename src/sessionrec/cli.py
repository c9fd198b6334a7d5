"""What every stage script shares: logging set-up, clean error messages, JSON output."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from sessionrec.params import ParamsError
from sessionrec.sources.rees46 import SourceError

USER_ERRORS = (ParamsError, SourceError, ValueError, FileNotFoundError)


def run(main) -> None:
    """Run a stage's ``main``; a user error prints one clear line and exits 2 (``SESSIONREC_DEBUG=1`` re-raises)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except USER_ERRORS as exc:
        if os.environ.get("SESSIONREC_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")
