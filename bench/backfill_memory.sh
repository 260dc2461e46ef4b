#!/usr/bin/env bash
# Memory and file count of a backfill spread over many partitions:
# LINES generated JSON lines (default 2,400,000) over 2,000 services and 24
# hourly partitions, archived with partition_by = dt, hour, service (48,000
# partition directories). Reports ingest's peak RSS, the files written and
# their sizes, then the same after `logwarden compact`.
# Usage: bench/backfill_memory.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2400000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "${LW:-}" ]; then
  cargo build --release --quiet --bin logwarden
  LW=target/release/logwarden
fi

echo "generating $N lines over 2000 services x 24 hours" >&2
python3 - "$N" > "$work/lines.jsonl" <<'PY'
import json, random, sys
n = int(sys.argv[1])
rnd = random.Random(7)
levels = ["info"] * 90 + ["warn"] * 6 + ["error"] * 3 + ["debug"]
day_us = 86_400_000_000
start = 1_772_323_200_000_000  # 2026-03-01T00:00:00Z
out = sys.stdout
for i in range(n):
    # Time-ordered, as a backfill of a day's logs would be.
    t = start + i * day_us // n
    sec, us = divmod(t, 1_000_000)
    import datetime
    ts = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{us:06d}Z"
    svc = f"svc-{rnd.randrange(2000):04d}"
    out.write(json.dumps({"ts": ts, "level": rnd.choice(levels), "service": svc,
        "host": f"{svc}-{rnd.randrange(4)}", "msg": f"request {i} handled in {rnd.randrange(1000)}ms",
        "trace_id": f"{rnd.getrandbits(64):016x}", "seq": i}) + "\n")
PY
bytes=$(stat -c %s "$work/lines.jsonl")

measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{time.monotonic() - t:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}")
PY
}
sizes() {
  python3 - "$1" "$2" <<'PY'
import os, statistics, sys
root, minb = sys.argv[1], int(sys.argv[2])
s = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs if f.endswith(".parquet")]
dirs = len({d for d, _, fs in os.walk(root) if any(f.endswith(".parquet") for f in fs)})
small = sum(1 for x in s if x < minb)
print(f"{len(s)} {dirs} {min(s)} {int(statistics.median(s))} {max(s)} {sum(s)} {small}")
PY
}
SETS=(--set 'archive.partition_by=["dt","hour","service"]')
MIN=${MIN_FILE_BYTES:-65536}
read -r i_secs i_rss < <(measure "$LW" ingest "${SETS[@]}" --input "$work/lines.jsonl" --output "$work/a")
read -r f1 d1 min1 med1 max1 tot1 small1 < <(sizes "$work/a" "$MIN")
read -r c_secs c_rss < <(measure "$LW" compact "${SETS[@]}" --output "$work/a" --settle-secs 0 --min-file-bytes "$MIN" --target-file-bytes $((MIN * 64)))
read -r f2 d2 min2 med2 max2 tot2 small2 < <(sizes "$work/a" "$MIN")

printf '\n%s lines (%.0f MB JSON), 2000 services x 24 hours, partition_by = dt, hour, service\n\n' "$N" "$(echo "$bytes / 1000000" | bc -l)"
echo "| step | seconds | peak RSS | files | partition dirs | min / median / max file bytes | files < $MIN B |"
echo "|---|---|---|---|---|---|---|"
echo "| ingest --input | $i_secs | $((i_rss / 1048576)) MiB | $f1 | $d1 | $min1 / $med1 / $max1 | $small1 |"
echo "| compact (min $MIN B) | $c_secs | $((c_rss / 1048576)) MiB | $f2 | $d2 | $min2 / $med2 / $max2 | $small2 |"
