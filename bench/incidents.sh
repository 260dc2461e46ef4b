#!/usr/bin/env bash
# Detection quality on labelled synthetic incidents: `logwarden eval` runs
# the generator (error burst, traffic drop, new template, latency
# regression, a slow drift and a day of the daily cycle that must not
# alert) through the parser and the detector with the default
# configuration (plus `duration_ms` as a numeric field), and prints per
# incident the signals that found it and the event-time delay, then
# precision, recall and delay. src/eval.rs holds the floor test.
#
#   bench/incidents.sh [RATE_SCALE]      (default 1: 10 events/s, 2 for the day)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LOGWARDEN_BIN:-}" ]; then
  cargo build --release --quiet --bin logwarden -p logwarden
fi
BIN="${LOGWARDEN_BIN:-target/release/logwarden}"
"$BIN" eval --rate-scale "${1:-1}"
