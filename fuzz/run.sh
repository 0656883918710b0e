#!/usr/bin/env bash
# Runs each fuzz target for a bounded time: fuzz/run.sh [SECONDS per target]
# (default 120). Seeds come from fuzz/seeds; the growing corpus is kept in
# fuzz/corpus (not committed). Exits non-zero on the first crash, leaving
# the input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-120}"
for target in predict_request image_header; do
    mkdir -p "fuzz/corpus/$target"
    echo "== $target for $secs s"
    cargo +nightly fuzz run -O "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
        -print_final_stats=1
done
