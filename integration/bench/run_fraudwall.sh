#!/usr/bin/env bash
# Run fraudwall through the shared sipp load harness (../shared/bench/sipp-harness), the same
# way run_kamailio.sh runs Kamailio, and print the harness's RESULT line plus load time and
# memory.
#
#   integration/bench/run_fraudwall.sh [options] [-- run_load.py options]
#
# Options (defaults in brackets):
#   --harness DIR      the sipp harness              [../shared/bench/sipp-harness beside the checkout]
#   --size N           list size; DIR/data/N must exist (./gen_blocklist.py --size N) [1000000]
#   --workers N        UDP worker threads            [2]
#   --bin PATH         fraudwall binary              [$CARGO_TARGET_DIR/release/fraudwall]
#   --work DIR         snapshot and logs             [/tmp/fraudwall-bench]
#   --load-only        compile, start, measure load time and memory, stop
#   --shared-socket    UDP workers share one socket (sip.udp_spread = "shared")
#   --spread S         sip.udp_spread: shared (the default), random, cpu or flow
#   --realtime N       UDP workers under SCHED_FIFO priority N (sip.udp_realtime_priority)
#   --label NAME       result label                  [fraudwall-SIZE-wWORKERS]
#   --decision-log T   decision-log target: stdout, off or a path [stdout, the carrier
#                      default: one JSON line per call, here into WORK/fraudwall.out]
#   --config FILE      a fraudwall config file (peer groups, [policy], ...)
#   --mode M           proxy or redirect (with a harness prepared by REDIRECT=1 prepare.sh)
#   --subscribers F    a subscriber list snapshot (compile --kind subscribers)
#   --protected F      a protected list snapshot (compile --kind protected)
#
# Steps: convert the harness CSV (prefix,action,kind; digits without '+') to fraudwall's CSV
# (number,action,category,score,source; ranges as +digits*), compile it with
# `fraudwall compile` (timed), start `fraudwall run` on 127.0.0.1:5060 forwarding to
# 127.0.0.1:5070 with the decision log on (the default config's target, stdout, which this
# script sends to a file; Kamailio's reference config logs nothing per call, so
# `--decision-log off` gives the like-for-like figure), time until /healthz answers (snapshot mapped),
# read its PSS, run run_load.py with --proxy-pid, stop fraudwall by PID.
set -euo pipefail

HARNESS=$(cd "$(dirname "$0")/../../.." && pwd)/shared/bench/sipp-harness
SIZE=1000000
WORKERS=2
BIN="${CARGO_TARGET_DIR:-target}/release/fraudwall"
WORK=/tmp/fraudwall-bench
LOAD_ONLY=0
DECISION_LOG=stdout
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --harness) HARNESS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --load-only) LOAD_ONLY=1; shift ;;
    --shared-socket) EXTRA+=(--shared-socket); shift ;;
    --spread) EXTRA+=(--udp-spread "$2"); shift 2 ;;
    --realtime) EXTRA+=(--realtime-priority "$2"); shift 2 ;;
    --label) LABEL=$2; shift 2 ;;
    --decision-log) DECISION_LOG=$2; shift 2 ;;
    --config) EXTRA+=(--config "$2"); shift 2 ;;
    --mode) EXTRA+=(--mode "$2"); shift 2 ;;
    --subscribers) EXTRA+=(--subscribers "$2"); shift 2 ;;
    --protected) EXTRA+=(--protected "$2"); shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

for bin in sipp python3 curl; do
  command -v "$bin" >/dev/null || { echo "$bin not installed" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "no fraudwall binary at $BIN: cargo build --release" >&2; exit 2; }
DATA="$HARNESS/data/$SIZE"
[ -f "$DATA/blocklist.csv" ] || { echo "no $DATA/blocklist.csv: cd $HARNESS && ./gen_blocklist.py --size $SIZE" >&2; exit 2; }
mkdir -p "$WORK"

CSV="$WORK/list-$SIZE.csv"
SNAP="$WORK/list-$SIZE.fwsnap"
if [ ! -f "$CSV" ] || [ "$DATA/blocklist.csv" -nt "$CSV" ]; then
  awk -F, 'NR == 1 { print "number,action,category,score,source"; next }
           { n = "+" $1; if ($3 == "range") n = n "*"; print n "," $2 ",harness-" $3 ",50,harness" }' \
    "$DATA/blocklist.csv" > "$CSV"
fi
T0=$(date +%s.%N)
"$BIN" compile "$CSV" --output "$SNAP" --quiet --no-builtin-protect >"$WORK/compile.log" 2>&1 \
  || { cat "$WORK/compile.log" >&2; exit 1; }
T1=$(date +%s.%N)
COMPILE_S=$(python3 -c "print(round($T1 - $T0, 2))")
SNAP_MB=$(python3 -c "import os; print(round(os.path.getsize('$SNAP') / 1e6, 1))")

T0=$(date +%s.%N)
"$BIN" run --blocklist "$SNAP" --listen 127.0.0.1:5060 --next-hop 127.0.0.1:5070 \
  --admin 127.0.0.1:9060 --workers "$WORKERS" --decision-log "$DECISION_LOG" --log-level warn "${EXTRA[@]}" \
  >"$WORK/fraudwall.out" 2>"$WORK/fraudwall.err" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -fs 127.0.0.1:9060/healthz >/dev/null 2>&1 && break
  kill -0 $PID 2>/dev/null || { cat "$WORK/fraudwall.err" >&2; exit 1; }
  sleep 0.05
done
T1=$(date +%s.%N)
LOAD_S=$(python3 -c "print(round($T1 - $T0, 3))")
pss_mb() { awk '/^Pss:/ { s += $2 } END { printf "%.1f", s / 1024 }' /proc/$PID/smaps_rollup; }
PSS0=$(pss_mb)
echo "fraudwall pid $PID: compile ${COMPILE_S}s (snapshot ${SNAP_MB} MB), start+load ${LOAD_S}s, PSS ${PSS0} MB"
[ "$LOAD_ONLY" = 1 ] && exit 0

cd "$HARNESS"
./run_load.py --label "${LABEL:-fraudwall-$SIZE-w$WORKERS}" --target 127.0.0.1:5060 --uas 127.0.0.1:5070 \
  --proxy-pid "$PID" --callers "$DATA/callers.csv" "$@"
echo "fraudwall load: compile_s=$COMPILE_S snapshot_mb=$SNAP_MB load_s=$LOAD_S pss_mb_idle=$PSS0 pss_mb_after=$(pss_mb)"
curl -fs 127.0.0.1:9060/metrics \
  | grep -E '^fraudwall_(verdicts_total|parse_errors_total|send_errors_total|fail_open_total|udp_worker_messages_total|overload|queue_delay_seconds_(sum|count))' || true
