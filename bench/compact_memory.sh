#!/usr/bin/env bash
# Peak memory of `logwarden compact` as merge groups grow: for each line
# count, JSON lines over one hour and 50 services are archived without
# compaction in segments of SEGMENT rows (one small file each), then
# `logwarden compact` merges the hour into one file (min and target file
# size TARGET), once with each fan-in of FANS (archive.compaction.
# max_merge_inputs). The merge streams its inputs, so the peak RSS depends
# on the fan-in, not on the bytes merged; the last column is peak RSS over
# the input bytes.
# Usage: [LW=path/to/logwarden] [SEGMENT=20000] [TARGET=1073741824] [FANS="8 32"]
#        bench/compact_memory.sh [LINES ...]   (default: 1000000 2000000 4000000)
set -euo pipefail
export LOGWARDEN_METRICS_LISTEN="${LOGWARDEN_METRICS_LISTEN:-127.0.0.1:0}"
cd "$(dirname "$0")/.."
. bench/lib.sh
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000000 2000000 4000000)
SEGMENT=${SEGMENT:-20000}
TARGET=${TARGET:-1073741824}
read -r -a FAN_LIST <<< "${FANS:-8 32}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "${LW:-}" ]; then
  cargo build --release --quiet --bin logwarden
  LW=target/release/logwarden
fi

# Parquet files under $1 and their total bytes.
files() {
  find "$1" -name '*.parquet' -not -path '*/_logwarden/*' -not -name '.*' -printf '%s\n' |
    awk '{n++; s+=$1} END {print n+0, s+0}'
}

echo "| lines | input files | input MB | fan-in | output files | output MB | compact seconds | peak RSS MiB | peak RSS / input bytes |"
echo "|---|---|---|---|---|---|---|---|---|"
for N in "${SIZES[@]}"; do
  python3 - "$N" > "$work/lines.jsonl" <<'PY'
import datetime, json, random, sys
n = int(sys.argv[1])
rnd = random.Random(11)
levels = ["info"] * 90 + ["warn"] * 6 + ["error"] * 3 + ["debug"]
start = datetime.datetime(2026, 3, 1, 10, tzinfo=datetime.timezone.utc)
out = sys.stdout
for i in range(n):
    t = start + datetime.timedelta(microseconds=i * 3_600_000_000 // n)
    svc = f"svc-{rnd.randrange(50):02d}"
    out.write(json.dumps({"ts": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "level": rnd.choice(levels),
        "service": svc, "host": f"{svc}-{rnd.randrange(4)}",
        "msg": f"request {i} for user {rnd.randrange(100000)} handled in {rnd.randrange(1000)}ms",
        "trace_id": f"{rnd.getrandbits(64):016x}", "seq": i}) + "\n")
PY
  base="$work/base-$N"
  "$LW" ingest --set archive.compaction.in_ingest=false --segment-max-rows "$SEGMENT" \
    --input "$work/lines.jsonl" --output "$base" >/dev/null 2>&1
  read -r f_in b_in < <(files "$base")
  for FAN in "${FAN_LIST[@]}"; do
    out="$work/archive"
    cp -a "$base" "$out"
    read -r secs rss < <(measure "$LW" compact --output "$out" --settle-secs 0 \
      --min-file-bytes "$TARGET" --target-file-bytes "$TARGET" \
      --set "archive.compaction.max_merge_inputs=$FAN")
    read -r f_out b_out < <(files "$out")
    printf '| %s | %s | %.1f | %s | %s | %.1f | %s | %d | %.2f |\n' "$N" "$f_in" \
      "$(echo "$b_in / 1000000" | bc -l)" "$FAN" "$f_out" "$(echo "$b_out / 1000000" | bc -l)" \
      "$secs" "$((rss / 1048576))" "$(echo "$rss / $b_in" | bc -l)"
    rm -rf "$out" "$work/.archive.compacting"
  done
  rm -rf "$base"
done
