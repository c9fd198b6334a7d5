"""Write docs/results.md from the committed benchmark summaries and ``benchmarks/results/runs.json``; with
``--headline``, print README's headline table instead (``tests/test_docs.py`` checks that both are current).

    python src/render_docs.py
"""

import argparse
import logging

from sessionrec.cli import run
from sessionrec.tools.docs import headline, write_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--headline", action="store_true", help="print README's headline table")
    args = ap.parse_args()
    if args.headline:
        print(headline())
        return
    logging.info("render_docs: wrote %s", write_results())


if __name__ == "__main__":
    run(main)
