#!/usr/bin/env bash
# What the tests need, on a fresh Debian machine: the pinned Python packages (requirements.txt) and Debian's chromium
# for the demo page's browser test (tests/test_demo_page.py drives it with Playwright; no browser is downloaded).
# Without root or sudo, or off Debian, install chromium yourself: the browser test fails until it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -r requirements.txt
if [ ! -x "${SESSIONREC_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo -n); fi
  if command -v apt-get >/dev/null; then
    "${sudo[@]}" apt-get install -y -q chromium >/dev/null 2>&1 \
      || { "${sudo[@]}" apt-get update -q >/dev/null 2>&1 && "${sudo[@]}" apt-get install -y -q chromium >/dev/null; } \
      || echo "tests/setup.sh: could not install Debian's chromium (apt-get install chromium);" \
              "tests/test_demo_page.py will fail until it is installed" >&2
  else
    echo "tests/setup.sh: no apt-get: install Chromium and set SESSIONREC_CHROMIUM to it for tests/test_demo_page.py" >&2
  fi
fi
