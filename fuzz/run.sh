#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600), PAR at a time (default
# 2), at the lowest CPU priority, and prints a table of runs (execs, seconds, crashes).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); works on stable Rust through
# RUSTC_BOOTSTRAP, without sanitizers (the code under test has no unsafe).
#   fuzz/run.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
par=${PAR:-2}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(json logfmt syslog access container text auto timestamps custom_pattern template_miner multiline)
fi
export RUSTC_BOOTSTRAP=1
nice -n 19 cargo fuzz build -s none -O >/dev/null
mkdir -p logs
run() {
  local t=$1
  mkdir -p "corpus/$t"
  nice -n 19 cargo fuzz run -s none -O "$t" "corpus/$t" seeds -- \
    -max_total_time="$secs" -print_final_stats=1 -max_len=4096 -timeout=10 >"logs/$t.log" 2>&1
  echo $? >"logs/$t.rc"
}
i=0
for t in "${targets[@]}"; do
  run "$t" &
  i=$((i + 1))
  if [ $((i % par)) -eq 0 ]; then wait; fi
done
wait
echo "| target | execs | seconds | execs/s | crashes |"
echo "|---|---|---|---|---|"
for t in "${targets[@]}"; do
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$')
  time=$(grep -o 'Done [0-9]* runs in [0-9]* second' "logs/$t.log" | grep -o 'in [0-9]*' | grep -o '[0-9]*')
  crashes=$(ls "artifacts/$t" 2>/dev/null | grep -c '^crash-\|^oom-\|^timeout-' || true)
  rate=$(( ${execs:-0} / ${time:-1} ))
  echo "| $t | ${execs:-?} | ${time:-?} | $rate | $crashes (exit $(cat "logs/$t.rc")) |"
done
