#!/usr/bin/env bash
# The transport floor, in one sitting: Kamailio, the UDP floor relay (examples/udp_floor.rs:
# fraudwall's UDP transport with a handler that only pushes and pops a Via line) and fraudwall,
# alternately, at the same fixed rate, on callers that are all "allow" (the relay screens
# nothing, so blocked and tagged callers would fail its verdict check).
#
#   BIN=target/release/fraudwall FLOOR=target/release/examples/udp_floor \
#     integration/bench/run_floor.sh [ROUNDS] [-- run_load.py options]
#
# Build first: cargo build --release && cargo build --release --example udp_floor.
# Defaults: 2 rounds of --skip-ramp --skip-latency --warmup-secs 5 --fixed-secs 12
# --fixed-repeat 2 at 2,000 calls/s; fraudwall with --decision-log off (Kamailio logs nothing
# per call). RESULT lines go to $WORK/floor.txt. The floor relay's CPU per call is what the
# kernel and the transport cost; fraudwall's minus the relay's is what the SIP core costs.
# FLOOR2=<binary> (e.g. target/release/examples/uring_floor) adds a second relay per round,
# run right after the first with the same CLI plus FLOOR2_ARGS (e.g. "--workers 2"); unset,
# the rounds are as before.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=${HARNESS:-$(cd "$HERE/../../.." && pwd)/shared/bench/sipp-harness}
SIZE=${SIZE:-1000000}
WORK=${WORK:-/tmp/fraudwall-bench}
BIN=${BIN:-target/release/fraudwall}
FLOOR=${FLOOR:-target/release/examples/udp_floor}
FLOOR2=${FLOOR2:-}
FLOOR2_ARGS=${FLOOR2_ARGS:-}
ROUNDS=${1:-2}; [ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- --skip-ramp --skip-latency --warmup-secs 5 --fixed-secs 12 --fixed-repeat 2
[ -x "$FLOOR" ] || { echo "no floor relay at $FLOOR: cargo build --release --example udp_floor" >&2; exit 2; }
BIN=$(realpath "$BIN"); FLOOR=$(realpath "$FLOOR")
if [ -n "$FLOOR2" ]; then
  [ -x "$FLOOR2" ] || { echo "no second floor relay at $FLOOR2" >&2; exit 2; }
  FLOOR2=$(realpath "$FLOOR2")
fi
mkdir -p "$WORK"
OUT="$WORK/floor.txt"
"$HERE/run_fraudwall.sh" --bin "$BIN" --size "$SIZE" --work "$WORK" --harness "$HARNESS" --load-only | tee -a "$OUT"
BIN=$BIN "$HERE/prepare.sh" "$WORK/list-$SIZE.fwsnap" "$HARNESS" "$SIZE" "$WORK" | tee -a "$OUT"
ALLOW="$WORK/callers-$SIZE-allow.csv"
{ head -n 1 "$WORK/callers-$SIZE.csv"; grep ';allow$' "$WORK/callers-$SIZE.csv"; } > "$ALLOW"
echo "callers: $(($(wc -l < "$ALLOW") - 1)) allowed callers in $ALLOW" | tee -a "$OUT"
pick() { grep -E '^(RESULT|  fixed-)' | tee -a "$OUT" || true; }
for i in $(seq 1 "$ROUNDS"); do
  echo "== round $i: kamailio $(date +%T)" | tee -a "$OUT"
  (cd "$WORK/harness" && ./run_kamailio.sh --size "$SIZE" -- --callers "$ALLOW" "$@") 2>&1 | pick
  echo "== round $i: floor relay $(date +%T)" | tee -a "$OUT"
  "$FLOOR" 127.0.0.1:5060 127.0.0.1:5070 2>"$WORK/floor.err" &
  FPID=$!
  sleep 0.5
  (cd "$WORK/harness" && ./run_load.py --label floor-relay --target 127.0.0.1:5060 --uas 127.0.0.1:5070 \
    --proxy-pid "$FPID" --callers "$ALLOW" "$@") 2>&1 | pick
  kill "$FPID"; wait "$FPID" 2>/dev/null || true
  if [ -n "$FLOOR2" ]; then
    echo "== round $i: floor relay 2 $(basename "$FLOOR2") $FLOOR2_ARGS $(date +%T)" | tee -a "$OUT"
    # shellcheck disable=SC2086 # FLOOR2_ARGS is a list of words
    "$FLOOR2" 127.0.0.1:5060 127.0.0.1:5070 $FLOOR2_ARGS 2>"$WORK/floor2.err" &
    FPID=$!
    sleep 0.5
    (cd "$WORK/harness" && ./run_load.py --label floor-relay-2 --target 127.0.0.1:5060 --uas 127.0.0.1:5070 \
      --proxy-pid "$FPID" --callers "$ALLOW" "$@") 2>&1 | pick
    kill "$FPID"; wait "$FPID" 2>/dev/null || true
    cat "$WORK/floor2.err" | tee -a "$OUT"
  fi
  echo "== round $i: fraudwall $(date +%T)" | tee -a "$OUT"
  "$HERE/run_fraudwall.sh" --bin "$BIN" --size "$SIZE" --work "$WORK" --harness "$WORK/harness" \
    --decision-log off -- --callers "$ALLOW" "$@" 2>&1 | pick
done
