"""The service's demo page in a real headless browser: Debian's ``chromium`` (apt), driven by Playwright with that
system browser (no downloaded one). A missing browser fails this test with what to install; it is never skipped.

``SESSIONREC_SCREENSHOT=docs/img/demo.png python -m pytest -n 0 tests/test_demo_page.py`` also writes the README's
screenshot of the page."""

import os
from pathlib import Path

import pytest

from conftest import ROOT, TINY, call, project_copy, served, sh

CHROMIUM = Path(os.environ.get("SESSIONREC_CHROMIUM", "/usr/bin/chromium"))
INSTALL = ("install Debian's chromium (`apt-get install chromium`, which `bash tests/setup.sh` runs) or set "
           "SESSIONREC_CHROMIUM to a Chromium binary")
# headless as root, and no background connections on a machine with no internet
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]


def shown(page, selector: str) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.productId)")]


@pytest.mark.slow
def test_demo_page_in_a_real_browser(tmp_path):
    """Pick a category, click two of its products and a recommendation: each click changes the recommendations, the
    explanation panel lists the clicked products with their weights, and what the page shows is the service's
    answer for the session; the page asks nothing of any other host."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -r requirements.txt")
    if not CHROMIUM.exists():
        pytest.fail(f"no browser at {CHROMIUM}: {INSTALL}")
    # the attentional aggregation GNN: its explanation weighs each clicked product, the weights summing to 1
    proj, env = project_copy(tmp_path, TINY)
    sh(proj, env, "dvc", "repro")
    with served(proj, env) as (base, server), sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        except Exception as e:  # noqa: BLE001  (any failure to start is the same message to the user)
            pytest.fail(f"{CHROMIUM} did not start ({str(e).splitlines()[0]}): {INSTALL}")
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        updates = [0]

        def act(do):  # one user action, then wait until the page has shown the service's answer to it
            do()
            updates[0] += 1
            page.wait_for_function(f"Number(document.body.dataset.updates) >= {updates[0]}", timeout=30_000)

        act(lambda: page.goto(base + "/"))  # an empty session: the most clicked products
        assert page.text_content("#strategy") == "popularity"
        category = page.eval_on_selector("#category", "s => s.value")
        _, listed = call(base, "GET", f"/products?limit=24&category={category}")
        assert shown(page, "#products button.product") == [p["product_id"] for p in listed]

        a, b = [p["product_id"] for p in listed[:2]]
        act(lambda: page.click(f"#products button[data-product-id='{a}']"))
        first = shown(page, "#recommendations li")
        assert page.text_content("#strategy").startswith("model") and len(first) == 10 and a not in first
        assert shown(page, "#explanation tbody tr") == [a] and shown(page, "#clicks li") == [a]

        act(lambda: page.click(f"#products button[data-product-id='{b}']"))
        second = shown(page, "#recommendations li")
        assert second != first and b not in second
        assert shown(page, "#explanation tbody tr") == [a, b]
        weights = [float(x) for x in page.eval_on_selector_all("#explanation tbody tr td:nth-child(2)",
                                                               "els => els.map(e => e.textContent)")]
        assert len(weights) == 2 and abs(sum(weights) - 1) < 0.01  # the gate's softmax over the two clicks

        c = second[0]
        act(lambda: page.click(f"#recommendations button[data-product-id='{c}']"))  # follow a recommendation
        assert shown(page, "#clicks li") == [a, b, c] and shown(page, "#explanation tbody tr") == [a, b, c]
        # what the page shows is the service's answer for the same clicks at the same times
        session = call(base, "GET", f"/sessions/{page.evaluate('sessionId')}")[1]
        _, answer = call(base, "POST", "/recommend", {"events": session["events"], "k": 10})
        assert shown(page, "#recommendations li") == [r["product_id"] for r in answer["items"]]

        screenshot = Path(os.environ.get("SESSIONREC_SCREENSHOT") or tmp_path / "demo.png")
        page.screenshot(path=str(screenshot if screenshot.is_absolute() else ROOT / screenshot))

        act(lambda: page.click("#reset"))
        assert page.text_content("#strategy") == "popularity" and shown(page, "#clicks li") == []
        assert page.text_content("#error") == "" and errors == []
        assert all(u.startswith(base + "/") for u in requests), [u for u in requests if not u.startswith(base)]
        browser.close()
        assert server.poll() is None
