#!/usr/bin/env bash
# Builds the Debian package and checks what it holds.
#   packaging/check-deb.sh [cargo-deb args...]   e.g. --profile dev (what CI uses)
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(cargo deb --locked "$@" 2>&1) || { echo "$log" >&2; exit 1; }
echo "$log"
deb=$(grep -E '\.deb$' <<<"$log" | tail -n 1)
deb=${deb##* }
[ -f "$deb" ] || { echo "check-deb: no .deb built" >&2; exit 1; }
echo "check-deb: checking $deb"

files=$(dpkg-deb -c "$deb" | awk '{print $6}')
for want in ./usr/bin/predictd \
            ./usr/share/predictd/models/themeClassifier.pb \
            ./usr/share/predictd/models/colorClassifier.pb \
            ./usr/share/predictd/labels/themes.txt \
            ./usr/share/predictd/labels/colors.txt \
            ./etc/predictd/predictd.toml \
            ./usr/share/doc/predictd/README.md \
            ./usr/share/doc/predictd/docs/configuration.md \
            ./usr/lib/systemd/system/predictd.service; do
    grep -qx "$want" <<<"$files" || { echo "check-deb: missing $want" >&2; echo "$files" >&2; exit 1; }
done

ctrl=$(mktemp -d)
trap 'rm -rf "$ctrl"' EXIT
dpkg-deb -e "$deb" "$ctrl"
grep -qx /etc/predictd/predictd.toml "$ctrl/conffiles" || { echo "check-deb: config is not a conffile" >&2; exit 1; }
grep -q 'adduser --system' "$ctrl/postinst" || { echo "check-deb: postinst does not create the user" >&2; exit 1; }
grep -q 'systemctl' "$ctrl/postinst" || { echo "check-deb: postinst does not enable the unit" >&2; exit 1; }
dpkg-deb -f "$deb" Depends | grep -q adduser || { echo "check-deb: no dependency on adduser" >&2; exit 1; }

# The packaged binary and config work together: the config the package
# installs names the files the package installs.
data=$(mktemp -d)
dpkg-deb -x "$deb" "$data"
sed "s|/usr/share/predictd/|$data/usr/share/predictd/|" "$data/etc/predictd/predictd.toml" > "$ctrl/check.toml"
"$data/usr/bin/predictd" check --config "$ctrl/check.toml"
rm -rf "$data"
echo "check-deb: ok"
