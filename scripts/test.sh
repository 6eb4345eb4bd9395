#!/usr/bin/env bash
# Install Graft with its test tools and run the whole test suite (README: "Run the tests").
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser test drives Debian's Chromium; install it when missing and apt is available.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
python -m pip install -q -r requirements-dev.txt
python -m pytest -q -p no:cacheprovider "$@"
