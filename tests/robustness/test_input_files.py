"""Real exports and broken files: what Excel, other exporters and interrupted downloads produce is either read as
what it means or refused in one line naming the file, line and field; every input line is accounted for."""

import gzip
import json
import sys

import pandas as pd
import pytest

from conftest import OCT_HEAD, need, project_copy, rees46_row, sh, write_csv
from sessionrec.params import DataParams, FilterEncodeParams
from sessionrec.prepare.filter_encode import filter_encode
from sessionrec.sources.fetch import fetch_raw
from sessionrec.sources.rees46 import COLUMNS, SourceError

# three sessions of three products each: every rule keeps them
ROWS = [rees46_row(10 * s + i, "view", 100 * s + i, sess=f"s{s}", user=str(s)) for s in range(1, 4) for i in range(3)]


def encode(tmp_path, path, **kw):
    report = filter_encode([path], FilterEncodeParams(**kw), tmp_path / "out")
    return report, pd.read_parquet(tmp_path / "out" / "events.parquet")


def test_excel_export_bom_crlf_and_quoted_fields_read_as_plain(tmp_path):
    plain = write_csv(tmp_path / "2019-Oct.csv", ROWS)
    quoted = ["\ufeff" + ",".join(f'"{c}"' for c in COLUMNS)] + \
        [",".join(f'"{v}"' for v in r.split(",")) for r in ROWS]
    excel = tmp_path / "excel" / "2019-Oct.csv"
    excel.parent.mkdir()
    excel.write_bytes(("\r\n".join(quoted) + "\r\n").encode("utf-8"))
    want_report, want = encode(tmp_path / "a", plain)
    got_report, got = encode(tmp_path / "b", excel)
    pd.testing.assert_frame_equal(got, want)
    assert got_report == want_report and got_report["rows_kept"] == len(ROWS)


@pytest.mark.parametrize("stamp", ["2019-10-01T00:00:{s:02d}Z", "2019-10-01T00:00:{s:02d}+00:00",
                                   "2019-10-01T02:00:{s:02d}+02:00", "2019-10-01 00:00:{s:02d}",
                                   "2019-10-01T00:00:{s:02d}.250Z"])
def test_iso_8601_timestamps_give_the_same_times(tmp_path, stamp):
    plain = write_csv(tmp_path / "2019-Oct.csv", ROWS)
    _, want = encode(tmp_path / "a", plain)
    iso = [rees46_row(0, "view", r.split(",")[2], sess=r.split(",")[8], user=r.split(",")[7],
                      time=stamp.format(s=int(r[17:19]))) for r in ROWS]
    _, got = encode(tmp_path / "b", write_csv(tmp_path / "iso.csv", iso))
    assert got["ts"].tolist() == want["ts"].tolist()


def test_mixed_and_bad_timestamps_are_counted_by_field_with_file_and_line(tmp_path):
    rows = ROWS[:3] + [rees46_row(0, "view", 7, sess="s9", time="01/10/2019 00:00")] + ROWS[3:] + \
        [rees46_row(0, "view", 8, sess="s9", time="yesterday")]
    report, ev = encode(tmp_path, write_csv(tmp_path / "2019-Oct.csv", rows))
    assert report["rows_dropped"]["unparseable_value.event_time"] == 2
    assert report["value_examples"]["event_time"] == [
        {"file": "2019-Oct.csv", "line": 5, "value": "01/10/2019 00:00"},
        {"file": "2019-Oct.csv", "line": 12, "value": "yesterday"}]
    assert report["rows_kept"] == len(ROWS) == len(ev)


def test_a_file_that_loses_every_row_names_the_rule_the_field_and_the_format(tmp_path):
    rows = [r.replace("2019-10-01 00:00", "01.10.2019 00:00") for r in ROWS]
    with pytest.raises(ValueError) as e:
        encode(tmp_path, write_csv(tmp_path / "2019-Oct.csv", rows))
    msg = str(e.value)
    assert "unparseable_value" in msg and "event_time" in msg and "ISO 8601" in msg and "line 2" in msg
    few = ROWS[:2]  # one session of two products: min_products_per_session (3) removes it
    with pytest.raises(ValueError, match="rule min_products_per_session removed every remaining row.*"
                                         "filter_encode.min_products_per_session"):
        encode(tmp_path, write_csv(tmp_path / "2019-Oct.csv", few))


def test_a_bad_price_makes_the_price_missing_and_keeps_the_click_in_its_session(tmp_path):
    rows = list(ROWS)
    rows[1] = rees46_row(11, "view", 101, sess="s1", user="1", price="-3")
    rows[4] = rees46_row(21, "view", 201, sess="s2", user="2", price="n/a")
    report, ev = encode(tmp_path, write_csv(tmp_path / "2019-Oct.csv", rows))
    assert report["values_made_missing"]["price"] == 2 and report["rows_kept"] == len(ROWS)
    assert ev.groupby("user_session").size().tolist() == [3, 3, 3]  # no session lost a click
    assert report["value_examples"]["price"] == [{"file": "2019-Oct.csv", "line": 3, "value": "-3"},
                                                 {"file": "2019-Oct.csv", "line": 6, "value": "n/a"}]
    # asked to, drop_listwise_nulls removes exactly those clicks, under its own name
    report, ev = encode(tmp_path, write_csv(tmp_path / "2019-Oct.csv", rows), drop_listwise_nulls=["price"],
                        min_products_per_session=2)
    assert report["rows_dropped"]["drop_listwise_nulls.price"] == 2 and len(ev) == len(ROWS) - 2


def test_malformed_and_blank_lines_are_reported_with_real_line_numbers(tmp_path):
    rows = ROWS[:2] + ["2019-10-01 00:00:05 UTC,view,5"] + ROWS[2:5] + [""] + ROWS[5:] + ["2019-10-01,x"]
    report, ev = encode(tmp_path, write_csv(tmp_path / "2019-Oct.csv", rows))
    assert [(m["line"], m["fields"]) for m in report["malformed_examples"]] == [(4, 3), (13, 2)]
    assert report["malformed_lines_skipped"] == 2 and report["rows_dropped"]["blank_line"] == 1
    assert report["rows_read"] == len(rows) and report["rows_kept"] == len(ROWS)
    # the line numbers of the values that follow the skipped lines stay true
    rows[9] = rees46_row(0, "view", 301, sess="s3", time="never")
    report, _ = encode(tmp_path, write_csv(tmp_path / "2019-Oct.csv", rows))
    assert report["value_examples"]["event_time"] == [{"file": "2019-Oct.csv", "line": 11, "value": "never"}]


def test_data_report_accounts_for_every_line_of_the_real_october_head_and_holds_no_timing(tmp_path):
    src = need(OCT_HEAD) / "2019-Oct.csv"
    report = filter_encode([src], FilterEncodeParams(), tmp_path / "a")
    lines = len(src.read_bytes().rstrip(b"\n").split(b"\n")) - 1  # data lines after the header
    assert report["rows_read"] == lines
    assert report["rows_read"] == (report["rows_kept"] + sum(report["rows_dropped"].values()) +
                                   report["malformed_lines_skipped"])
    again = filter_encode([src], FilterEncodeParams(), tmp_path / "b")
    assert json.dumps(again) == json.dumps(report)  # byte-identical: DVC sees no change on a rerun
    assert (tmp_path / "a/events.parquet").read_bytes() == (tmp_path / "b/events.parquet").read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["events.parquet", "vocab.parquet"]  # no temp


@pytest.mark.parametrize("name, content, message", [
    ("2019-Oct.csv.gz", lambda plain: gzip.compress(plain)[:-40], "compressed data is corrupt or truncated"),
    ("2019-Oct.csv.gz", lambda plain: plain, "not a gzip file"),
    ("2019-Oct.csv.zip", lambda plain: b"PK\x03\x04" + plain[:100], "not a valid zip file"),
])
def test_broken_archives_are_one_line_errors_and_leave_no_partial_file(tmp_path, name, content, message):
    plain = write_csv(tmp_path / "plain.csv", ROWS * 200)
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(content(plain.read_bytes()))
    raw = tmp_path / "raw"
    with pytest.raises(SourceError, match=message) as e:
        fetch_raw(DataParams(source="local", local_dir=str(src), start_month="2019-10", end_month="2019-10"), raw)
    assert str(src / name) in str(e.value)
    assert not raw.exists() and list(tmp_path.glob(".raw*")) == []  # no 0-byte CSV, no temporary folder


def test_the_stage_reports_a_broken_archive_in_one_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "2019-Oct.csv.zip").write_bytes(b"not a zip at all")
    proj, env = project_copy(tmp_path, {"data": {"source": "local", "local_dir": str(src),
                                                 "start_month": "2019-10", "end_month": "2019-10"}})
    r = sh(proj, env, sys.executable, "src/download.py", check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {src / '2019-Oct.csv.zip'}: not a valid zip file")
    assert not (proj / "data/raw").exists()
