#!/usr/bin/env bash
# The package on a real systemd host: a minimal Debian 12 root made with
# debootstrap, booted with `systemd-nspawn --boot` (systemd as PID 1 in the
# container), the .deb installed into it, then, as an administrator would:
#
#   - the package's postinst enables and starts the unit; `systemctl
#     restart` returns only when the daemon is ready (Type=forking: the
#     parent exits when the models are loaded), so a health check right
#     after it passes at once;
#   - a prediction through the installed socket with the installed config;
#   - `systemctl reload` (SIGHUP) under a prediction loop: it keeps serving;
#   - the journal has the per-request and per-prediction lines;
#   - `systemctl stop` drains and removes the socket;
#   - `apt-get remove` leaves only the conffile, `apt-get purge` nothing of
#     the package (the system user stays, as Debian policy has it).
#
#   packaging/systemd-host-test.sh PACKAGE.deb
#
# Needs root, debootstrap and systemd-container (installed here if
# missing), and Debian's package mirror. The root is cached in
# /var/tmp/predictd-nspawn-root; each run boots a fresh copy of it.
set -euo pipefail
deb=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "systemd-host-test: needs root" >&2; exit 1; }

if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        debootstrap systemd-container >/dev/null
fi

cache=/var/tmp/predictd-nspawn-root
if [ ! -x "$cache/usr/lib/systemd/systemd" ]; then
    echo "== debootstrap a minimal Debian 12 root (once; cached in $cache)"
    rm -rf "$cache.partial"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,adduser \
        bookworm "$cache.partial" http://deb.debian.org/debian >/dev/null
    mv "$cache.partial" "$cache"
fi

work=$(mktemp -d /var/tmp/predictd-host.XXXXXX)
machine=predictd-test-$$
nspawn_pid=
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== boot a copy of it with systemd-nspawn"
cp -a "$cache" "$work/root"
cp "$deb" "$work/root/root/predictd.deb"
cp "$here/tests/fixtures/photos/skimage-coffee.jpg" "$work/root/root/photo.jpg"
# No machined or D-Bus on the host side: the container is not registered
# and stays in this process's cgroup.
systemd-nspawn -q -D "$work/root" --boot --register=no --keep-unit \
    --machine="$machine" >"$work/console.log" 2>&1 </dev/null &
nspawn_pid=$!

# The container's PID 1 (systemd), seen from here.
leader=
for _ in $(seq 300); do
    leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
    [ -n "$leader" ] && break
    sleep 0.1
done
[ -n "$leader" ] || { cat "$work/console.log" >&2; echo "systemd-host-test: the container did not boot" >&2; exit 1; }
inside() { nsenter --target "$leader" --mount --uts --ipc --net --pid -- "$@"; }
for _ in $(seq 300); do
    state=$(inside systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 0.2
done
echo "   systemd in the container: $state"

fail() { echo "systemd-host-test: $*" >&2; inside journalctl -u predictd --no-pager | tail -n 30 >&2 || true; exit 1; }
socket=/run/predictd/predictd.sock

echo "== install the package (its postinst enables and starts the unit)"
inside env DEBIAN_FRONTEND=noninteractive dpkg -i /root/predictd.deb >/dev/null \
    || fail "dpkg -i failed"
inside systemctl is-enabled predictd >/dev/null || fail "the unit is not enabled"
inside systemctl is-active predictd >/dev/null || fail "the unit is not active after install"

echo "== systemctl restart returns when the daemon is ready"
inside systemctl restart predictd || fail "systemctl restart failed"
inside /usr/bin/predictd health --ready --socket "$socket" --timeout-ms 500 \
    || fail "not ready right after systemctl restart returned"
[ "$(inside stat -c %U:%G "$socket")" = "predictd:predictd" ] || fail "socket owner $(inside stat -c %U:%G "$socket")"

echo "== a prediction through the installed socket, installed config"
out=$(inside /usr/bin/predictd predict --socket "$socket" --x 300 --y 200 --json /root/photo.jpg) \
    || fail "predict failed: $out"
grep -q '"theme"' <<<"$out" && grep -q '"color"' <<<"$out" || fail "answer without both models: $out"

echo "== systemctl reload keeps serving"
pid_before=$(inside systemctl show -p MainPID --value predictd)
errors=0
for i in $(seq 6); do
    [ "$i" = 3 ] && { inside systemctl reload predictd || fail "systemctl reload failed"; }
    inside /usr/bin/predictd predict --socket "$socket" --x 10 --y 10 /root/photo.jpg >/dev/null || errors=$((errors + 1))
done
[ "$errors" = 0 ] || fail "$errors predictions failed around the reload"
# The journal is read whole, then searched: `journalctl | grep -q` fails
# under pipefail when grep stops reading before journalctl has written all
# (SIGPIPE), which a long journal makes likely.
reloaded() { local journal; journal=$(inside journalctl -u predictd --no-pager); grep -q "reload: ok" <<<"$journal"; }
for _ in $(seq 100); do
    reloaded && break
    sleep 0.1
done
reloaded || fail "no 'reload: ok' in the journal"
[ "$(inside systemctl show -p MainPID --value predictd)" = "$pid_before" ] || fail "the reload restarted the daemon"

echo "== the journal has the per-request lines"
journal=$(inside journalctl -u predictd --no-pager)
grep -q "request: seq=.*route=/v1/predict status=200 ms=" <<<"$journal" || fail "no request line in the journal"
grep -q "prediction: id=.*top1=.*total_ms=" <<<"$journal" || fail "no prediction line in the journal"
grep -q "model load: model=theme" <<<"$journal" || fail "no model load line in the journal"

echo "== systemctl stop drains and removes the socket"
inside systemctl stop predictd || fail "systemctl stop failed"
inside test ! -e "$socket" || fail "the socket outlived the stop"
inside test ! -e /run/predictd/predictd.pid || fail "the pidfile outlived the stop"

inside test -d /var/lib/predictd || fail "no state folder /var/lib/predictd while installed"
echo "== apt-get remove, then purge"
inside env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq predictd >/dev/null || fail "apt-get remove failed"
for f in /usr/bin/predictd /usr/share/predictd /lib/systemd/system/predictd.service; do
    inside test ! -e "$f" || fail "$f left after remove"
done
inside test -f /etc/predictd/predictd.toml || fail "remove took the conffile (only purge may)"
inside env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq predictd >/dev/null || fail "apt-get purge failed"
inside test ! -e /etc/predictd || fail "/etc/predictd left after purge"
inside test ! -e /var/lib/predictd || fail "/var/lib/predictd (state) left after purge"
left=$(inside dpkg -l predictd 2>/dev/null | awk '/^[a-z][a-z] +predictd /{print $1}' || true)
[ -z "$left" ] || fail "dpkg still lists predictd as $left"
inside test ! -e /etc/systemd/system/multi-user.target.wants/predictd.service || fail "the enablement link outlived the purge"

echo "systemd-host-test: ok (installed, started ready, predicted, reloaded, journaled, stopped, removed, purged)"
