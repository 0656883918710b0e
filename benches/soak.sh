#!/usr/bin/env bash
# A soak: the release daemon on the shipped models for MINUTES (default 10)
# under 8 clients on a mix of small photos (the fixtures) and 12-16 MP
# camera JPEGs, a SIGHUP every RELOAD seconds (default 5), a client that
# sends half a request and vanishes every second, and a hostile client
# sending random bytes. Prints resident memory, descriptors, threads,
# in-flight requests and the allocator's own figures every 10 s, then the
# totals and the checks: every non-hostile request 200, every reload ok,
# peak resident memory <= 250 MB, memory and descriptors flat after the
# first minute (exit 1 if one fails). See benches/soak.py.
#
#   benches/soak.sh [MINUTES] [RELOAD_SECONDS] [BINARY]
#
# Needs the release build (built here if missing) and Python 3.11; numpy
# and Pillow make the large photos (benches/make_photos.py) on the first run
# (a venv in benches/.venv-photos unless benches/.venv has them). Not run in
# CI (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
reload="${2:-5}"
bin="${3:-target/release/predictd}"

if [ ! -x "$bin" ]; then
    cargo build --release --locked --bin predictd
fi
py=python3
if ! $py -c 'import numpy, PIL' 2>/dev/null; then
    if [ -x benches/.venv/bin/python ] && benches/.venv/bin/python -c 'import numpy, PIL' 2>/dev/null; then
        py=benches/.venv/bin/python
    else
        [ -x benches/.venv-photos/bin/python ] || python3 -m venv benches/.venv-photos
        benches/.venv-photos/bin/pip install -q numpy pillow
        py=benches/.venv-photos/bin/python
    fi
fi
$py benches/make_photos.py benches/.cache/large >/dev/null

work=$(mktemp -d)
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
sock="$work/predictd.sock"
"$bin" config | sed \
    -e "s|^socket = .*|socket = \"$sock\"|" \
    -e "s|^pidfile = .*|pidfile = \"$work/predictd.pid\"|" > "$work/predictd.toml"
PREDICTD_LOG=warn "$bin" serve --config "$work/predictd.toml" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 600); do
    curl -sf --unix-socket "$sock" http://localhost/readyz >/dev/null 2>&1 && break
    kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log"; exit 1; }
    sleep 0.1
done

echo "# soak: $minutes min, SIGHUP every $reload s; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs; $("$bin" --version)"
status=0
python3 benches/soak.py "$daemon" "$sock" "$((minutes * 60))" "$reload" \
    tests/fixtures/photos/*.jpg benches/.cache/large/*.jpg || status=$?
if grep -q -i panick "$work/daemon.log"; then
    echo "FAIL the daemon panicked:"; grep -i -m5 panick "$work/daemon.log"; status=1
fi
exit "$status"
