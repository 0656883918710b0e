#!/usr/bin/env bash
# Does a flood from one uid slow another uid's predictions?
#
# Starts the daemon with rate-per-uid 10 (burst 10). uid 0 sends 5
# predictions a second (`predictd bench --rate 5`), first alone, then while
# uid 65534 floods the socket from 4 connections as fast as answers come
# back: the rate limit admits 10 of its requests a second and answers the
# rest 429 at once. Prints both runs of uid 0, the flood's counts, and the
# ratio of uid 0's p50 and p95 latencies. Same binary, same machine, same
# run: compare the ratio, not the milliseconds. (What the flood is
# admitted costs like any traffic; what the limit refuses must not.)
#
# Needs root (the flood runs as another uid, with setpriv).
# usage: benches/flood.sh [BINARY] [SECONDS]   (default target/release/predictd, 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/predictd}"
secs="${2:-10}"
work=$(mktemp -d)
chmod 755 "$work"
daemon=""
cleanup() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cp "$bin" "$work/predictd"
cp tests/fixtures/photos/skimage-coffee.jpg "$work/coffee.jpg"
chmod 755 "$work/predictd"
chmod 644 "$work/coffee.jpg"
sock="$work/predictd.sock"
"$work/predictd" config | sed \
    -e "s|^socket = .*|socket = \"$sock\"|" \
    -e "s|^pidfile = .*|pidfile = \"$work/predictd.pid\"|" \
    -e 's|^socket-mode = .*|socket-mode = "0666"|' \
    -e 's|^rate-per-uid = .*|rate-per-uid = 10|' \
    -e 's|^rate-burst = .*|rate-burst = 10|' > "$work/predictd.toml"
PREDICTD_LOG=warn "$work/predictd" serve --config "$work/predictd.toml" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 300); do
    "$work/predictd" predict --socket "$sock" --x 1 --y 1 "$work/coffee.jpg" >/dev/null 2>&1 && break
    sleep 0.1
done

bench() { "$work/predictd" bench --socket "$sock" --concurrency 4 --rate 5 --duration "$secs" --x 100 --y 100 "$work/coffee.jpg"; }
p() { awk -v k="$1:" '$1 == k {print $2}'; }

echo "== uid 0 alone"
alone=$(bench)
echo "$alone"
sleep 3   # let uid 0's bucket refill
echo "== uid 0 while uid 65534 floods (4 connections, as fast as it can)"
setpriv --reuid 65534 --regid 65534 --clear-groups \
    "$work/predictd" bench --socket "$sock" --concurrency 4 --duration "$((secs + 2))" \
    --x 100 --y 100 "$work/coffee.jpg" >"$work/flood.txt" &
flood=$!
sleep 1
during=$(bench)
echo "$during"
wait "$flood" || true
echo "== the flood (uid 65534)"
cat "$work/flood.txt"
echo "== ratio during/alone"
for k in p50 p95; do
    a=$(echo "$alone" | p "$k"); b=$(echo "$during" | p "$k")
    awk -v k="$k" -v a="$a" -v b="$b" 'BEGIN {printf "%s: %.1f ms -> %.1f ms (%.2fx)\n", k, a, b, b / a}'
done
