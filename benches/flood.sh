#!/usr/bin/env bash
# Does a flood from one uid slow another uid's predictions?
#
# Starts the daemon with rate-per-uid 10 (burst 10). uid 0 sends 5
# predictions a second (`predictd bench --rate 5`) three times: alone;
# beside uid 65534 sending exactly the 10 requests a second the limit
# admits ("polite"); beside uid 65534 flooding the socket from CONNECTIONS
# (default 4) connections as fast as answers come back ("flood": the limit
# admits 10 a second and answers the rest 429). Prints each run, the CPU the
# daemon and the other client used meanwhile, and the ratios of uid 0's
# p50 and p95. Same binary, same machine, same run: compare ratios, not
# milliseconds. What the flood is admitted costs like any traffic
# (polite/alone); what the limit refuses should cost little (flood/polite).
#
# Needs root (the flood runs as another uid, with setpriv).
# usage: benches/flood.sh [BINARY] [SECONDS] [CONNECTIONS]
#        (defaults: target/release/predictd, 10 s, 4 connections)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/predictd}"
secs="${2:-10}"
conns="${3:-4}"
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

# CPU seconds (user + system) a process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# Another uid's load beside uid 0's: "polite" sends exactly the 10 requests
# a second the limit admits; "flood" sends as fast as answers come back.
other() {
    local args=(--concurrency 4 --rate 10)
    [ "$1" = flood ] && args=(--concurrency "$conns")
    setpriv --reuid 65534 --regid 65534 --clear-groups \
        "$work/predictd" bench --socket "$sock" "${args[@]}" \
        --duration "$((secs + 2))" --x 100 --y 100 "$work/coffee.jpg" >"$work/$1.txt" &
    other_pid=$!
    sleep 1
    local d0 o0
    d0=$(cpu "$daemon"); o0=$(cpu "$other_pid")
    result=$(bench)
    echo "$result"
    echo "CPU during uid 0's run: daemon $(awk -v a="$d0" -v b="$(cpu "$daemon")" 'BEGIN {print b - a}') s," \
        "uid 65534's client $(awk -v a="$o0" -v b="$(cpu "$other_pid")" 'BEGIN {print b - a}') s"
    wait "$other_pid" || true
    echo "-- uid 65534 ($1)"
    cat "$work/$1.txt"
    sleep 3   # let the buckets refill
}
ratio() {
    for k in p50 p95; do
        a=$(echo "$2" | p "$k"); b=$(echo "$3" | p "$k")
        awk -v t="$1" -v k="$k" -v a="$a" -v b="$b" \
            'BEGIN {printf "%s %s: %.1f ms -> %.1f ms (%.2fx)\n", t, k, a, b, b / a}'
    done
}

echo "== uid 0 alone"
alone=$(bench)
echo "$alone"
sleep 3
echo "== uid 0 while uid 65534 sends its admitted 10 requests/s"
other polite
polite=$result
echo "== uid 0 while uid 65534 floods ($conns connections, as fast as it can)"
other flood
flood=$result
echo "== ratios"
ratio "polite/alone" "$alone" "$polite"
ratio "flood/polite" "$polite" "$flood"
ratio "flood/alone " "$alone" "$flood"
