#!/usr/bin/env bash
# A/B comparison in one sitting: Kamailio and fraudwall alternately on the same list, the same
# callers and the same load (the VM's speed drifts ±20 % between runs: alternate, compare
# ranges and ratios), then a summary of the ratios issue 14 asks for, per round and as medians.
#
#   BIN=/path/to/fraudwall integration/bench/run_ab.sh [ROUNDS] [-- run_load.py options]
#
# Each round runs, for Kamailio then fraudwall, two passes of the harness's run_load.py:
#   pass A: ramp (max sustained calls/s), fixed rate 2,000 (CPU per call), transit latency at
#           2,000 (p50/p99/p99.9);
#   pass B: fixed rate $HIGH_RATE (6,000: CPU per call) and transit latency at that rate.
# Options after "--" are added to both passes (the later value of an option wins). The pass
# options are PASS_A and PASS_B (defaults below); HIGH_RATE=0 skips pass B. About 7 to 8
# minutes a round on the 2-core box (Kamailio's list load, ~30 s, twice).
#
# Defaults: 2 rounds, 1M entries, fraudwall with 2 UDP workers (Kamailio: 2 children), the
# harness at ../shared/bench/sipp-harness beside the checkout (HARNESS overrides).
# prepare.sh makes the private harness copy and the callers file first. RESULT lines are
# appended to $WORK/ab.txt, tagged lines for the summary to $WORK/ab-<time>.txt, and the
# summary (integration/bench/ab_summary.py, which can be re-run on that file) printed at
# the end. FW_OPTS adds run_fraudwall.sh options (e.g. FW_OPTS="--decision-log off" for the
# like-for-like figure: Kamailio logs nothing per call).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=${HARNESS:-$(cd "$HERE/../../.." && pwd)/shared/bench/sipp-harness}
SIZE=${SIZE:-1000000}
WORK=${WORK:-/tmp/fraudwall-bench}
BIN=${BIN:-$WORK/fraudwall}
HIGH_RATE=${HIGH_RATE:-6000}
PASS_A=${PASS_A:---rates 6000,9000,12000,15000,18000 --step-secs 10 --refine 1 --fixed-rate 2000 --fixed-secs 10 --fixed-repeat 1 --latency-secs 8 --latency-high-pct 0}
PASS_B=${PASS_B:---skip-ramp --warmup-secs 5 --fixed-rate $HIGH_RATE --fixed-secs 10 --fixed-repeat 1 --latency-secs 8 --latency-high-pct 0}
ROUNDS=${1:-2}; [ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
mkdir -p "$WORK"
OUT="$WORK/ab.txt"
TAGGED="$WORK/ab-$(date +%Y%m%d-%H%M%S).txt"
# Compile once (run_fraudwall.sh --load-only), then the callers file and harness copy.
"$HERE/run_fraudwall.sh" --bin "$BIN" --size "$SIZE" --work "$WORK" --harness "$HARNESS" --load-only | tee -a "$OUT"
BIN=$BIN "$HERE/prepare.sh" "$WORK/list-$SIZE.fwsnap" "$HARNESS" "$SIZE" "$WORK" | tee -a "$OUT"
CALLERS="$WORK/callers-$SIZE.csv"

# One pass of one proxy: its RESULT line to ab.txt, tagged to $TAGGED.
pass() { # proxy round pass options...
  local proxy=$1 round=$2 name=$3; shift 3
  local lines
  if [ "$proxy" = kamailio ]; then
    lines=$( (cd "$WORK/harness" && ./run_kamailio.sh --size "$SIZE" -- --callers "$CALLERS" "$@") 2>&1 \
      | grep -E '^(RESULT|  (ramp|refine|fixed|latency)-)' || true)
  else
    # shellcheck disable=SC2086
    lines=$("$HERE/run_fraudwall.sh" --bin "$BIN" --size "$SIZE" --work "$WORK" --harness "$WORK/harness" ${FW_OPTS:-} \
      -- --callers "$CALLERS" "$@" 2>&1 \
      | grep -E '^(RESULT|fraudwall (load|pid)|fraudwall_udp_worker|  (ramp|refine|fixed|latency)-)' || true)
  fi
  printf '%s\n' "$lines" | tee -a "$OUT"
  printf '%s\n' "$lines" | sed -n "s/^\(RESULT\|  \(ramp\|refine\|fixed\|latency\)-\)/AB round=$round proxy=$proxy pass=$name &/p" >> "$TAGGED"
}

for i in $(seq 1 "$ROUNDS"); do
  for proxy in kamailio fraudwall; do
    echo "== round $i: $proxy $(date +%T)" | tee -a "$OUT"
    # shellcheck disable=SC2086
    pass "$proxy" "$i" A $PASS_A "$@"
    if [ "$HIGH_RATE" != 0 ]; then
      # shellcheck disable=SC2086
      pass "$proxy" "$i" B $PASS_B "$@"
    fi
  done
done
echo "== summary ($TAGGED)" | tee -a "$OUT"
python3 "$HERE/ab_summary.py" "$TAGGED" --high-rate "$HIGH_RATE" | tee -a "$OUT"
