#!/usr/bin/env bash
# A/B comparison in one sitting: Kamailio and fraudwall alternately on the same list and load
# (the VM's speed drifts ±20 % between runs, so alternate and compare ranges and ratios).
#
#   integration/bench/run_ab.sh [ROUNDS] [-- run_load.py options]     # default 2 rounds
# Each run takes about 10 minutes. RESULT lines are collected in /tmp/fraudwall-bench/ab.txt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=${HARNESS:-/work/shared/bench/sipp-harness}
ROUNDS=${1:-2}; shift || true
[ "${1:-}" = "--" ] && shift
mkdir -p /tmp/fraudwall-bench
OUT=/tmp/fraudwall-bench/ab.txt
for i in $(seq 1 "$ROUNDS"); do
  echo "== round $i: kamailio" | tee -a "$OUT"
  (cd "$HARNESS" && ./run_kamailio.sh -- "$@") 2>&1 | grep -E '^RESULT' | tee -a "$OUT"
  echo "== round $i: fraudwall" | tee -a "$OUT"
  "$HERE/run_fraudwall.sh" -- "$@" 2>&1 | grep -E '^(RESULT|fraudwall load|fraudwall pid)' | tee -a "$OUT"
done
