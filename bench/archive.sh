#!/usr/bin/env bash
# Archive size and query speed against DuckDB's own Parquet, in one run:
#   1. generate N JSON lines (default 1,000,000)
#   2. logwarden ingest --input -> the Hive-partitioned archive
#   3. DuckDB read_json -> one zstd Parquet file of the same lines
#   4. sizes: raw JSON, logwarden's archive, DuckDB's file
#   5. "errors per service per hour for one day" with DuckDB on both
#      (median of 7 runs each, after one warm-up, same process)
# Usage: bench/archive.sh [LINES]
set -euo pipefail
# Any free port for /metrics, so a logwarden already running here does not clash.
export LOGWARDEN_METRICS_LISTEN="${LOGWARDEN_METRICS_LISTEN:-127.0.0.1:0}"
cd "$(dirname "$0")/.."
N=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install --quiet duckdb
if [ -z "${LW:-}" ]; then
  cargo build --release --quiet --bin logwarden
  LW=target/release/logwarden
fi

echo "generating $N JSON lines" >&2
$LW generate --count "$N" --seed 5 --json-share 1 --start 2026-03-01T00:00:00Z > "$work/lines.jsonl" 2>/dev/null
$LW ingest --input "$work/lines.jsonl" --output "$work/lw" >/dev/null 2>&1

python3 - "$work" "$N" <<'PY'
import os, statistics, sys, time
import duckdb

work, n = sys.argv[1], int(sys.argv[2])
lines = f"{work}/lines.jsonl"
duck = f"{work}/duck.parquet"
con = duckdb.connect()
t = time.monotonic()
con.execute(f"COPY (SELECT * FROM read_json('{lines}')) TO '{duck}' (FORMAT parquet, COMPRESSION zstd)")
duck_secs = time.monotonic() - t

def du(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs if f.endswith(".parquet"))

raw, lw, dk = du(lines), du(f"{work}/lw"), du(duck)
files = sum(1 for d, _, fs in os.walk(f"{work}/lw") for f in fs if f.endswith(".parquet"))
day = "2026-03-01"
q_lw = f"""SELECT service, hour, count(*) AS errors
  FROM read_parquet('{work}/lw/**/*.parquet', hive_partitioning = true)
  WHERE dt = '{day}' AND level = 'error' GROUP BY ALL ORDER BY ALL"""
q_dk = f"""SELECT service, hour(ts) AS hour, count(*) AS errors
  FROM read_parquet('{duck}')
  WHERE ts >= TIMESTAMPTZ '{day} 00:00:00+00' AND ts < TIMESTAMPTZ '{day} 00:00:00+00' + INTERVAL 1 DAY
    AND level = 'error' GROUP BY ALL ORDER BY ALL"""

def timed(q):
    con.execute(q).fetchall()
    runs = []
    for _ in range(7):
        t = time.monotonic()
        rows = con.execute(q).fetchall()
        runs.append(time.monotonic() - t)
    return statistics.median(runs), rows

con.execute("SET TimeZone = 'UTC'")
t_lw, r_lw = timed(q_lw)
t_dk, r_dk = timed(q_dk)
same = sorted((s, int(h), c) for s, h, c in r_lw) == sorted((s, int(h), c) for s, h, c in r_dk)
print(f"\n{n:,} JSON lines, {raw / 1e6:.1f} MB; logwarden archive: {files} files\n")
print("| output | bytes | vs raw JSON | vs DuckDB zstd | query: errors/service/hour, one day (median of 7) |")
print("|---|---|---|---|---|")
print(f"| raw JSON lines | {raw / 1e6:.1f} MB | 1.00x | - | - |")
print(f"| logwarden archive (Hive dt/hour, zstd 1, sorted) | {lw / 1e6:.1f} MB | {raw / lw:.1f}x smaller | {dk / lw:.2f}x | {t_lw * 1000:.1f} ms |")
print(f"| DuckDB COPY ... (COMPRESSION zstd), one file | {dk / 1e6:.1f} MB | {raw / dk:.1f}x smaller | 1.00x | {t_dk * 1000:.1f} ms |")
print(f"\nquery results equal: {same} ({len(r_lw)} groups); DuckDB conversion took {duck_secs:.1f}s")
PY
