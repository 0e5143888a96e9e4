#!/usr/bin/env bash
# A/B comparison in one sitting: Kamailio and fraudwall alternately on the same list, the same
# callers and the same load (the VM's speed drifts ±20 % between runs: alternate, compare
# ranges and ratios).
#
#   BIN=/path/to/fraudwall integration/bench/run_ab.sh [ROUNDS] [-- run_load.py options]
#
# Defaults: 2 rounds, 1M entries, fraudwall with 2 UDP workers (Kamailio: 2 children). Each run
# takes about 10 minutes. prepare.sh makes the private harness copy and the callers file first.
# RESULT lines are appended to $WORK/ab.txt. FW_OPTS adds run_fraudwall.sh options (e.g.
# FW_OPTS="--decision-log off" for the like-for-like figure: Kamailio logs nothing per call).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=${HARNESS:-$(cd "$HERE/../../.." && pwd)/shared/bench/sipp-harness}
SIZE=${SIZE:-1000000}
WORK=${WORK:-/tmp/fraudwall-bench}
BIN=${BIN:-$WORK/fraudwall}
ROUNDS=${1:-2}; [ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
mkdir -p "$WORK"
OUT="$WORK/ab.txt"
# Compile once (run_fraudwall.sh --load-only), then the callers file and harness copy.
"$HERE/run_fraudwall.sh" --bin "$BIN" --size "$SIZE" --work "$WORK" --harness "$HARNESS" --load-only | tee -a "$OUT"
BIN=$BIN "$HERE/prepare.sh" "$WORK/list-$SIZE.fwsnap" "$HARNESS" "$SIZE" "$WORK" | tee -a "$OUT"
CALLERS="$WORK/callers-$SIZE.csv"
for i in $(seq 1 "$ROUNDS"); do
  echo "== round $i: kamailio $(date +%T)" | tee -a "$OUT"
  (cd "$WORK/harness" && ./run_kamailio.sh --size "$SIZE" -- --callers "$CALLERS" "$@") 2>&1 \
    | grep -E '^(RESULT|  (ramp|refine|fixed)-)' | tee -a "$OUT" || true
  echo "== round $i: fraudwall $(date +%T)" | tee -a "$OUT"
  # shellcheck disable=SC2086
  "$HERE/run_fraudwall.sh" --bin "$BIN" --size "$SIZE" --work "$WORK" --harness "$WORK/harness" ${FW_OPTS:-} \
    -- --callers "$CALLERS" "$@" 2>&1 \
    | grep -E '^(RESULT|fraudwall (load|pid)|  (ramp|refine|fixed)-)' | tee -a "$OUT" || true
done
