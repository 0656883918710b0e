#!/usr/bin/env bash
# Makes the browser test runnable: Debian's Chromium, and Playwright in
# tests/browser/.venv (driving that Chromium; no browser is downloaded).
# Idempotent; quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "tests/browser/setup.sh: install Debian's chromium package (apt-get install chromium)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! .venv/bin/python -c 'import playwright' 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
fi
