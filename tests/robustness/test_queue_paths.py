"""README's relative ``data.local_dir`` in queued and ``--temp`` experiments, which run in a copy of the project
under ``.dvc/tmp/exps/``."""

import pytest

from conftest import TINY, project_copy, rees46_row, sh, write_csv
from sessionrec import paths


def test_relative_local_dir_resolves_from_the_project_in_a_queued_run(tmp_path, monkeypatch):
    """``dvc exp run --queue`` / ``--temp`` run in a copy under ``.dvc/tmp/exps/``: README's relative
    ``data.local_dir`` must still name the project's neighbour folder."""
    project = tmp_path / "work" / "proj"
    (tmp_path / "work" / "shared" / "data").mkdir(parents=True)
    copy = project / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    assert paths.user_path("../shared/data") == project / "../shared/data"
    assert paths.user_path("../shared/data").resolve() == (tmp_path / "work" / "shared" / "data").resolve()
    assert paths.user_path("/abs/dir") == paths.Path("/abs/dir")
    (copy / "inside").mkdir()
    assert paths.user_path("inside") == paths.Path("inside")  # what the copy has is read from the copy
    monkeypatch.chdir(project)
    assert paths.user_path("../shared/data") == paths.Path("../shared/data")


@pytest.mark.slow
def test_a_temp_experiment_reads_a_relative_local_dir(tmp_path):
    rows = [rees46_row(10 * s + i, "view", 1 + (s + i) % 40, sess=f"s{s}", user=str(s)) for s in range(300)
            for i in range(4)]
    (tmp_path / "rees46").mkdir()
    write_csv(tmp_path / "rees46" / "2019-Oct.csv", rows)
    proj, env = project_copy(tmp_path, {**TINY, "data": {"source": "local", "local_dir": "../rees46",
                                                         "start_month": "2019-10", "end_month": "2019-10"}})
    r = sh(proj, env, "dvc", "exp", "run", "--temp", "filter_encode", check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "does not exist" not in r.stdout + r.stderr
