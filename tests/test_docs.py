"""The documents stay true to the committed JSON: README's headline table and docs/results.md are what
``src/render_docs.py`` renders, and README stays a guide."""

import re

from conftest import ROOT
from sessionrec.tools.docs import RESULTS_MD, headline, results_md


def speed_script(name: str):
    """``benchmarks/speed/NAME.py`` as a module (its neighbours, e.g. versions.py, importable)."""
    import importlib.util
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks/speed"))
    spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / f"benchmarks/speed/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_rendered(tag: str, result: str, render, doc: str = "docs/speed.md") -> None:
    """``doc``'s block ``tag`` is ``render`` of ``benchmarks/results/RESULT.json``, whose command and commit the
    text names."""
    import json

    text = (ROOT / doc).read_text()
    block = re.search(rf"<!-- {tag} -->\n(.*?)\n<!-- /{tag} -->", text, re.S)
    assert block, f"{doc} has no {tag} table"
    run = json.loads((ROOT / f"benchmarks/results/{result}.json").read_text())
    assert block.group(1) == render(run), f"{doc}'s {tag} table is stale"
    flat = " ".join(text.split())  # the command may be wrapped over lines
    assert f"`{run['command']}`" in flat and f"`{run['machine']['commit']}`" in flat, tag


def test_readme_headline_is_the_rendered_table():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- headline: [^>]*-->\n(.*?)\n<!-- /headline -->", readme, re.S)
    assert block, "README.md has no headline block"
    assert block.group(1) == headline(ROOT), "README's headline table is stale: python src/render_docs.py --headline"


def test_results_md_is_generated_from_the_committed_summaries():
    assert (ROOT / RESULTS_MD).read_text() == results_md(ROOT), "docs/results.md is stale: python src/render_docs.py"


def test_readme_is_a_guide_and_no_document_says_who_ran_what():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    pattern = re.compile(r"session's\smachine|previous\ssession|this\ssession|earlier\ssession|on\sthis\smachine", re.I)
    for path in [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")]:
        hits = [line for line in path.read_text().splitlines() if pattern.search(line)]
        assert not hits, (path.name, hits)


def test_ci_runs_the_readmes_test_command_and_every_image_readme_shows_exists():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert ci in readme, f".ci/run runs {ci!r}, which README's quickstart does not give"
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", readme):
        assert (ROOT / image).is_file(), image


def test_readme_benchmark_tables_are_rendered_from_the_committed_json():
    """README's Scale tables (and docs/scale.md's train + evaluate run) are ``benchmarks/run.py``'s rendering of the
    committed runs (quick: metrics/benchmarks.json; full scale: benchmarks/results/pipeline-gnn-16000000.json; the
    pipeline runs of docs/scale.md), so a figure cannot drift from its JSON."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    readme = (ROOT / "README.md").read_text()
    for size, path in (("quick", ROOT / "metrics/benchmarks.json"),
                       ("full", ROOT / "benchmarks/results/pipeline-hybrid-16000000-bd1939a.json")):
        block = re.search(rf"<!-- benchmarks:{size} -->\n(.*?)\n\n", readme, re.S)
        assert block, f"README.md has no {size} benchmark table"
        results = run.nested(json.loads(path.read_text()))
        shown = {k: v for k, v in results.items() if size == "full" or k != "pipeline"}
        assert block.group(1) == run.table(shown), f"README's {size} table is stale: python benchmarks/run.py --render"
    scale = (ROOT / "docs/scale.md").read_text()  # its pipeline runs (one network, the hybrid), rendered the same way
    for name in ("pipeline-gnn-2000000", "pipeline-hybrid-250000", "pipeline-hybrid-250000-val10000",
                 "pipeline-hybrid-250000-val10000-24b2c9e", "pipeline-hybrid-250000-val10000-841d3d3",
                 "pipeline-hybrid-250000-val10000-ce8f47a", "pipeline-hybrid-250000-val10000-506170e",
                 "pipeline-hybrid-16000000-train", "pipeline-gnn-16000000", "pipeline-hybrid-16000000-bd1939a"):
        block = re.search(rf"<!-- benchmarks:{name} -->\n(.*?)\n<!-- /", scale, re.S)
        assert block, f"docs/scale.md has no {name} table"
        results = run.nested(json.loads((ROOT / f"benchmarks/results/{name}.json").read_text()))
        assert block.group(1) == run.table(results), name


def test_the_weight_search_table_is_rendered_from_its_committed_json():
    import json

    ws = speed_script("weight_search")
    block = re.search(r"<!-- weight-search -->\n(.*?)\n<!-- /weight-search -->", (ROOT / "docs/speed.md").read_text(),
                      re.S)
    assert block, "docs/speed.md has no weight-search table"
    results = json.loads((ROOT / "benchmarks/results/weight_search.json").read_text())
    assert block.group(1) == ws.table(results), "docs/speed.md's weight search table is stale"


def test_the_evaluation_table_is_rendered_from_its_committed_json():
    import json

    ev = speed_script("evaluate")
    for marker, name in (("evaluate-blocks", "evaluate_speed_blocks"), ("evaluate-hybrid", "evaluate_hybrid"),
                         ("evaluate-hybrid-pool", "evaluate_hybrid_pool"),
                         ("evaluate-hybrid-stan4m", "evaluate_hybrid_stan4m"),
                         ("weight-search-parts", "weight_search_parts"),
                         ("weight-search-sparse", "weight_search_sparse")):
        block = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", (ROOT / "docs/speed.md").read_text(), re.S)
        assert block, f"docs/speed.md has no {marker} table"
        rows = json.loads((ROOT / f"benchmarks/results/{name}.json").read_text())
        assert block.group(1) == ev.table(rows), f"docs/speed.md's {marker} table is stale"


def test_the_sampled_loss_studies_are_rendered_from_their_committed_json():
    sl = speed_script("sampled_loss")
    for tag, result in (("sampled-loss-ablation", "sampled_loss_ablation"), ("sampled-loss-rees46", "sampled_loss_rees46")):
        assert_rendered(tag, result, lambda run: sl.mean_table(run["quality"]))


def test_the_srgnn_official_comparison_is_rendered_from_its_committed_json():
    assert_rendered("srgnn-official", "srgnn_official", speed_script("srgnn_official").table)


def test_the_filter_encode_phases_are_rendered_from_their_committed_json():
    assert_rendered("filter-encode-phases", "filter_encode_phases", speed_script("filter_encode_phases").table)


def test_the_stan_scale_table_is_rendered_from_its_committed_json():
    for tag, result in (("stan-scale", "stan_scale"), ("stan-scale-select", "stan_scale_select")):
        assert_rendered(tag, result, speed_script("stan_scale").table, doc="docs/scale.md")
