from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OCT_HEAD = SHARED / "rees46-2019-oct-head"
NOV_HEAD = SHARED / "rees46-2019-nov-head"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real-data sample {path} not present (it lives in ../shared/data on the dev machines)")
    return path


def write_csv(path: Path, rows: list[str], header: bool = True) -> Path:
    from sessionrec.sources.rees46 import COLUMNS

    lines = ([",".join(COLUMNS)] if header else []) + rows
    path.write_text("\n".join(lines) + "\n")
    return path


def pytest_sessionfinish(session, exitstatus):
    """With SESSIONREC_REQUIRE_TESTS=1 (CI), a run in which no test passed fails."""
    if os.environ.get("SESSIONREC_REQUIRE_TESTS") == "1" and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        passed = len(reporter.stats.get("passed", [])) if reporter else 0
        if passed == 0:
            print("\nSESSIONREC_REQUIRE_TESTS=1 but no test passed")
            session.exitstatus = 1
