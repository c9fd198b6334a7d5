"""`data.source: splits`: the reference's very examples, and our popularity / session-kNN scored on them against the
session-rec figures published next to the splits (read from ../shared/data/splits/README.md, not typed here)."""

import json
import re
import shutil
import sys

import pytest
import yaml

from conftest import OCT_HEAD, SHARED, need, project_copy, sh
from sessionrec.sources.rees46 import SourceError
from sessionrec.sources.splits import read_split

SPLITS = SHARED / "splits"
NAMES = {"POP": "pop", "SKNN": "sknn", "V-SKNN": "vsknn", "STAN": "stan"}


def reference_table():
    """{(method, split folder): (R@20, MRR@20)} from the splits README."""
    text = need(SPLITS / "README.md").read_text()
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in NAMES:
            r1, m1, r2, m2 = map(float, cells[1:])
            out[(NAMES[cells[0]], "rees46-oct-head")] = (r1, m1)
            out[(NAMES[cells[0]], "diginetica-sample")] = (r2, m2)
    assert len(out) == 8, "the reference table of the splits README changed shape"
    return out


@pytest.mark.parametrize("folder", ["rees46-oct-head", "diginetica-sample"])
def test_sessions_rebuild_every_reference_example(folder):
    split_dir = need(SPLITS / folder)
    stats = json.loads((split_dir / "stats.json").read_text())
    for split in ("train", "test"):
        d = read_split(split_dir, split)  # raises on the first example that differs
        assert d["examples"] == stats[f"{split}_examples"]
        assert (d["ts"][1:] >= d["ts"][:-1])[d["session_index"][1:] == d["session_index"][:-1]].all()


def test_a_changed_example_line_is_named(tmp_path):
    src = need(SPLITS / "diginetica-sample")
    dst = tmp_path / "s"
    shutil.copytree(src, dst)
    lines = (dst / "test.tsv").read_text().splitlines()
    lines[4] = lines[4].split("\t")[0] + "\t1"
    (dst / "test.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=r"test.tsv:5: expected the prefix"):
        read_split(dst, "test")


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["rees46-oct-head", "diginetica-sample"])
def test_popularity_and_session_knn_match_session_rec_on_the_same_examples(tmp_path, folder):
    ref = reference_table()
    data = {"source": "splits", "splits_dir": str(need(SPLITS / folder))}
    if folder.startswith("rees46"):
        data["local_dir"] = str(need(OCT_HEAD))  # side information through item_map.tsv
    proj, env = project_copy(tmp_path, {"data": data, "model": {"name": "stan"}})
    sh(proj, env, "dvc", "repro")
    report = json.loads((proj / "metrics/data_report.json").read_text())
    assert report["test_examples"] == json.loads((SPLITS / folder / "stats.json").read_text())["test_examples"]
    if folder.startswith("rees46"):
        assert report["items_without_side_information"] == 0
    for name in ("stan", "sknn", "vsknn", "pop"):
        if name != "stan":
            params = yaml.safe_load((proj / "params.yaml").read_text())
            params["model"]["name"] = name
            (proj / "params.yaml").write_text(yaml.safe_dump(params))
            sh(proj, env, sys.executable, "src/train.py")
            sh(proj, env, sys.executable, "src/evaluate.py")
        test = json.loads((proj / "metrics/test.json").read_text())
        want_r, want_m = ref[(name, folder)]
        # same examples, same tie rule; only the order of equally similar neighbours may differ from session-rec
        assert abs(100 * test["R@20"] - want_r) <= 0.5, (name, test["R@20"], want_r)
        assert abs(100 * test["MRR@20"] - want_m) <= 0.5, (name, test["MRR@20"], want_m)


def test_splits_source_needs_its_folder(tmp_path):
    proj, env = project_copy(tmp_path, {"data": {"source": "splits", "splits_dir": str(tmp_path / "nowhere")}})
    r = sh(proj, env, sys.executable, "src/download.py", check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nowhere is not a folder" in r.stderr
    assert re.search(r"error: data.splits_dir", r.stderr)


def test_diginetica_reader_reproduces_the_reference_split_byte_for_byte(tmp_path):
    """The SR-GNN preprocessing of the shipped sample gives exactly the files of ../shared/data/splits (md5)."""
    import hashlib

    from sessionrec.sources.diginetica import srgnn_preprocess

    views = need(SHARED / "diginetica-sample" / "sample_train-item-views.csv")
    want = json.loads(need(SPLITS / "diginetica-sample" / "stats.json").read_text())["md5"]
    report = srgnn_preprocess(views, tmp_path)
    assert report["rows"] == 12391 and report["items"] == 309
    for name in ("train.tsv", "test.tsv", "train_meta.tsv", "test_meta.tsv", "train_sessions.tsv",
                 "test_sessions.tsv"):
        assert hashlib.md5((tmp_path / name).read_bytes()).hexdigest() == want[name], name


@pytest.mark.slow
def test_diginetica_source_runs_the_pipeline_on_the_reference_examples(tmp_path):
    proj, env = project_copy(tmp_path, {"data": {"source": "diginetica",
                                                 "local_dir": str(need(SHARED / "diginetica-sample"))},
                                        "model": {"name": "stan"}})
    sh(proj, env, "dvc", "repro")
    data = json.loads((proj / "metrics/data_report.json").read_text())
    assert data["items"] == 309 and data["items_without_side_information"] == 0  # product-categories.csv joined
    assert data["categories"] == 88  # distinct category ids of those items
    test = json.loads((proj / "metrics/test.json").read_text())
    want_r, want_m = reference_table()[("stan", "diginetica-sample")]
    assert test["examples"] == 99
    assert abs(100 * test["R@20"] - want_r) <= 0.5 and abs(100 * test["MRR@20"] - want_m) <= 0.5


def test_diginetica_categories_bad_line_is_named(tmp_path):
    from sessionrec.sources.diginetica import write_item_categories
    from sessionrec.sources.rees46 import SourceError

    (tmp_path / "item_map.tsv").write_text("1\t100\n2\t200\n")
    (tmp_path / "product-categories.csv").write_text("itemId;categoryId\n100;7\n200;x\n")
    with pytest.raises(SourceError, match=r"product-categories.csv:3: .*'200;x'"):
        write_item_categories(tmp_path, tmp_path)
    (tmp_path / "product-categories.csv").write_text("itemId;categoryId\n100;7\n")
    assert write_item_categories(tmp_path, tmp_path)["items_without_category"] == 1
    assert (tmp_path / "item_categories.tsv").read_text() == "100\t7\n"
