"""The documents stay true to the committed JSON: README's headline table and docs/results.md are what
``src/render_docs.py`` renders, and README stays a guide."""

import re

from conftest import ROOT
from sessionrec.tools.docs import RESULTS_MD, headline, results_md


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

