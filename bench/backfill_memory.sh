#!/usr/bin/env bash
# Memory and file count of a backfill spread over many partitions:
# LINES generated JSON lines (default 2,400,000) over 2,000 services and 24
# hourly partitions, archived with partition_by = dt, hour, service (48,000
# partition directories). Reports, in one run: ingest with its own
# compaction (the default, archive.compaction.in_ingest = true), its peak
# RSS, the files left and their sizes, and the small files (under MIN bytes)
# that are not the only file of their partition, which must be 0; then, for
# comparison, the two-step way: ingest without compaction, then
# `logwarden compact`.
# Usage: [LW=path/to/logwarden] [MIN_FILE_BYTES=65536] bench/backfill_memory.sh [LINES]
set -euo pipefail
# Any free port for /metrics, so a logwarden already running here does not clash.
export LOGWARDEN_METRICS_LISTEN="${LOGWARDEN_METRICS_LISTEN:-127.0.0.1:0}"
cd "$(dirname "$0")/.."
. bench/lib.sh
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

sizes() {
  python3 - "$1" "$2" <<'PY'
import os, statistics, sys
root, minb = sys.argv[1], int(sys.argv[2])
by_dir = {}
for d, _, fs in os.walk(root):
    if "/_logwarden" in d or "/." in d:
        continue
    s = [os.path.getsize(os.path.join(d, f)) for f in fs if f.endswith(".parquet") and not f.startswith(".")]
    if s:
        by_dir[d] = s
s = [x for v in by_dir.values() for x in v]
small = sum(1 for x in s if x < minb)
# Small files that are not the only file of their partition.
crowded = sum(1 for v in by_dir.values() if len(v) > 1 for x in v if x < minb)
print(f"{len(s)} {len(by_dir)} {min(s)} {int(statistics.median(s))} {max(s)} {sum(s)} {small} {crowded}")
PY
}
SETS=(--set 'archive.partition_by=["dt","hour","service"]')
MIN=${MIN_FILE_BYTES:-65536}
TARGET=$((MIN * 64))
COMPACTION=(--set "archive.compaction.min_file_bytes=$MIN" --set "archive.compaction.target_file_bytes=$TARGET")

# 1. ingest compacting by itself (the default): one process, one step.
read -r a_secs a_rss < <(measure "$LW" ingest "${SETS[@]}" "${COMPACTION[@]}" --input "$work/lines.jsonl" --output "$work/auto")
read -r f0 d0 min0 med0 max0 tot0 small0 crowded0 < <(sizes "$work/auto" "$MIN")
rm -rf "$work/auto" "$work/.auto.compacting"

# 2. and 3. the two-step way: ingest without compaction, then compact.
read -r i_secs i_rss < <(measure "$LW" ingest "${SETS[@]}" --set archive.compaction.in_ingest=false --input "$work/lines.jsonl" --output "$work/a")
read -r f1 d1 min1 med1 max1 tot1 small1 crowded1 < <(sizes "$work/a" "$MIN")
read -r c_secs c_rss < <(measure "$LW" compact "${SETS[@]}" --output "$work/a" --settle-secs 0 --min-file-bytes "$MIN" --target-file-bytes "$TARGET")
read -r f2 d2 min2 med2 max2 tot2 small2 crowded2 < <(sizes "$work/a" "$MIN")

printf '\n%s lines (%.0f MB JSON), 2000 services x 24 hours, partition_by = dt, hour, service, min_file_bytes %s\n\n' "$N" "$(echo "$bytes / 1000000" | bc -l)" "$MIN"
echo "| step | seconds | peak RSS | files | partition dirs | min / median / max file bytes | files < $MIN B | of which not alone in their partition |"
echo "|---|---|---|---|---|---|---|---|"
echo "| ingest --input, compacting by itself | $a_secs | $((a_rss / 1048576)) MiB | $f0 | $d0 | $min0 / $med0 / $max0 | $small0 | $crowded0 |"
echo "| ingest --input, in_ingest = false | $i_secs | $((i_rss / 1048576)) MiB | $f1 | $d1 | $min1 / $med1 / $max1 | $small1 | $crowded1 |"
echo "| then compact | $c_secs | $((c_rss / 1048576)) MiB | $f2 | $d2 | $min2 / $med2 / $max2 | $small2 | $crowded2 |"
