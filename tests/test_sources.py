"""Local files in every upstream packaging, month selection, and Kaggle without credentials."""

import gzip
import json
import sys
import zipfile

import pytest

from conftest import write_csv
from sessionrec.params import DataParams
from sessionrec.sources import rees46
from sessionrec.sources.fetch import fetch_raw

ROWS = ["2019-10-01 00:00:00 UTC,view,1,2053013555631882655,a.b,x,1.00,5,s1",
        "2019-10-01 00:00:01 UTC,view,2,2053013555631882655,a.b,x,2.00,5,s1"]


def test_months_and_names():
    assert rees46.months_between("2019-11", "2020-02") == ["2019-11", "2019-12", "2020-01", "2020-02"]
    assert rees46.month_file_stem("2020-04") == "2020-Apr"


def test_local_csv_gz_zip_are_read_and_manifested(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    plain = write_csv(tmp_path / "plain.csv", ROWS)
    (src / "2019-Oct.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    with zipfile.ZipFile(src / "2019-Nov.csv.zip", "w") as z:
        z.write(plain, "2019-Nov.csv")
    manifest = fetch_raw(DataParams(source="local", local_dir=str(src), start_month="2019-10", end_month="2019-11"),
                         tmp_path / "raw")
    assert [f["file"] for f in manifest["files"]] == ["2019-Oct.csv", "2019-Nov.csv"]
    assert [f["rows"] for f in manifest["files"]] == [2, 2]
    assert (tmp_path / "raw" / "2019-Nov.csv").read_bytes() == plain.read_bytes()
    assert json.loads((tmp_path / "raw" / "manifest.json").read_text())["files"][0]["sha256"]


def test_missing_month_names_expected_files(tmp_path):
    with pytest.raises(rees46.SourceError, match=r"no file for month 2019-12 \(expected 2019-Dec\.csv or"):
        rees46.find_local_files(tmp_path, ["2019-12"])
    with pytest.raises(rees46.SourceError, match="does not exist"):
        rees46.find_local_files(tmp_path / "nope", ["2019-12"])


def test_kaggle_without_client_or_credentials_is_clear(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaggle", None)
    monkeypatch.setitem(sys.modules, "kaggle.api", None)
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", None)
    with pytest.raises(rees46.SourceError, match="pip install kaggle"):
        rees46.download_kaggle(["2019-10"], tmp_path)


def test_kaggle_without_credentials_is_clear(tmp_path, monkeypatch):
    import types

    class FakeApi:
        def authenticate(self):
            raise OSError("Could not find kaggle.json")

    mod = types.ModuleType("kaggle.api.kaggle_api_extended")
    mod.KaggleApi = FakeApi
    for name in ("kaggle", "kaggle.api"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", mod)
    with pytest.raises(rees46.SourceError, match="no Kaggle credentials found.*kaggle.json"):
        rees46.download_kaggle(["2019-10"], tmp_path)
