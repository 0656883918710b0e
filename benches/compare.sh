#!/usr/bin/env bash
# predictd against a reference server built like the stack it replaces
# (CherryPy + a TensorFlow Session per graph + Pillow), on the same graphs and
# photos, one run, on this machine. Prints a Markdown table: both columns and
# their ratio, for small photos (the test fixtures, <= 1024 px) at 1 and 8
# clients, a mix with 12-16 MP camera-size JPEGs, 5 clicks on each large
# photo, resident memory, and the theme CNN alone in tract and TensorFlow.
#
#   benches/compare.sh [SECONDS]      # seconds per timed load, default 10
#
# Needs: the release build (built here if missing), Python 3.11 with venv
# (benches/.venv is made from tools/models/requirements.txt + CherryPy on the
# first run, ~600 MB). Takes ~3 minutes plus the first-run setup. Only ratios
# of one run mean anything on a shared machine. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_LOAD="${1:-10}"

if [ ! -x target/release/predictd ] || [ ! -x target/release/examples/model_speed ]; then
    cargo build --release --locked --bins --examples
fi
if [ ! -x benches/.venv/bin/python ] || ! benches/.venv/bin/python -c 'import cherrypy, tensorflow' 2>/dev/null; then
    python3 -m venv benches/.venv
    benches/.venv/bin/pip install -q -r tools/models/requirements.txt -r benches/requirements.txt
fi
benches/.venv/bin/python benches/make_photos.py benches/.cache/large >/dev/null
exec benches/.venv/bin/python benches/compare.py "$PWD/target/release/predictd" \
    "$PWD/benches/.venv/bin/python" benches/.cache/large "$SECONDS_PER_LOAD"
