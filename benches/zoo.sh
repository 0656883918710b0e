#!/usr/bin/env bash
# predictd against TensorFlow on the zoo of standard architectures
# (tests/fixtures/zoo: Keras applications frozen by TF 2.15, TF1-era slim
# and retrain.py graphs, at small input sizes), one row a graph: each
# graph's plan alone in predictd (its loader, rewrites and kernels:
# examples/zoo_speed) and in a TensorFlow 2.15 Session (benches/zoo_tf.py),
# fed the same golden input, median milliseconds per inference, one run,
# on this machine. The header names the CPU and the kernel family
# (PREDICTD_KERNELS forces one; see docs/command-line.md).
#
#   benches/zoo.sh [RUNS] [THREADS]        # default 30 runs, 1 thread
#
# Needs: the release build (built here if missing) and benches/.venv with
# TensorFlow (benches/compare.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
threads=${2:-1}
manifest=tests/fixtures/zoo/manifest.json
if [ ! -x target/release/predictd ] || [ ! -x target/release/examples/zoo_speed ]; then
    cargo build --release --locked --bins --examples
fi
if [ ! -x benches/.venv/bin/python ]; then
    echo "zoo.sh: benches/.venv is missing: run benches/compare.sh once first" >&2
    exit 1
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
kernels=$(target/release/predictd check 2>/dev/null | sed -n 's/^kernels //p')
ours=$(mktemp) theirs=$(mktemp)
trap 'rm -f "$ours" "$theirs"' EXIT
echo "== predictd" >&2
target/release/examples/zoo_speed "$manifest" "$runs" "$threads" > "$ours"
echo "== TensorFlow" >&2
TF_CPP_MIN_LOG_LEVEL=2 benches/.venv/bin/python benches/zoo_tf.py "$manifest" "$runs" "$threads" > "$theirs"
echo "predictd vs TensorFlow 2.15 on the zoo, $cpu, $(nproc) cores, $threads thread(s), median of $runs runs, kernels $kernels"
echo
echo "| graph | TensorFlow | predictd | predictd / TensorFlow |"
echo "|---|---|---|---|"
join <(sort "$theirs") <(sort "$ours") | while read -r name tf pd rest; do
    if [[ "$tf" =~ ^[0-9.]+$ && "$pd" =~ ^[0-9.]+$ ]]; then
        ratio=$(awk -v a="$pd" -v b="$tf" 'BEGIN { printf "%.2fx", a / b }')
        echo "| $name | $tf ms | $pd ms | $ratio |"
    else
        [[ "$pd" =~ ^[0-9.]+$ ]] && pd="$pd ms"
        echo "| $name | $tf | $pd $rest | |"
    fi
done
