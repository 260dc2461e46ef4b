#!/usr/bin/env bash
# NAB (Numenta Anomaly Benchmark) figures of the product, through the same
# path a user takes: each series of the data set is converted to JSON lines
# and replayed with `logwarden backtest --field value --scores-out` using the
# default configuration; the scores are then judged by the NAB scorer
# (detect/src/nab.rs) with the best single threshold, and with the product's
# own alert flag as the detection. The windowed-Gaussian baseline NAB
# publishes is computed by the same bench tool for comparison.
#
#   bench/nab.sh [DATA_DIR]      (default /work/shared/eval/nab-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-/work/shared/eval/nab-dev}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# LOGWARDEN_BIN / NAB_BIN: use already built binaries instead.
if [ -z "${LOGWARDEN_BIN:-}" ] || [ -z "${NAB_BIN:-}" ]; then
  cargo build --release --quiet --bin logwarden -p logwarden
  cargo build --release --quiet -p logwarden-detect --example nab
fi
BIN="${LOGWARDEN_BIN:-target/release/logwarden}"
NAB="${NAB_BIN:-target/release/examples/nab}"

start=$(date +%s.%N)
rows=0
while IFS= read -r csv; do
  rel="${csv#"$DATA"/}"
  mkdir -p "$WORK/in/$(dirname "$rel")" "$WORK/scores/$(dirname "$rel")"
  # timestamp,value -> {"timestamp": "...", "value": ...}
  awk -F, 'NR > 1 { printf "{\"timestamp\":\"%s\",\"value\":%s}\n", $1, $2 }' "$csv" \
    > "$WORK/in/${rel%.csv}.jsonl"
  "$BIN" backtest --input "$WORK/in/${rel%.csv}.jsonl" --field value \
    --scores-out "$WORK/scores/$rel" > /dev/null 2>&1
  rows=$((rows + $(wc -l < "$csv") - 1))
done < <(find "$DATA" -mindepth 2 -name '*.csv' | sort)
end=$(date +%s.%N)

echo "== logwarden backtest (default configuration), $rows rows in $(echo "$end - $start" | bc) s"
"$NAB" --data "$DATA" --scores "$WORK/scores"
echo
echo "== windowed Gaussian baseline (bench reimplementation)"
"$NAB" --data "$DATA" --detector gaussian | tail -1
