#!/usr/bin/env bash
# The overload target of issue 14: fraudwall with ONE UDP worker pinned to one core
# (taskset), sipp (UAC and UAS) pinned to the other, so the overload is the proxy's and not
# the load generator's.
#
#   BIN=/path/to/fraudwall integration/bench/run_overload.sh [options] [-- run_load.py options]
#
#   1. max sustained rate M in this setup (the harness's ramp and bisection), unless --max M;
#   2. FACTOR x M (2) for SECS (60) seconds: goodput (successful calls per second), the
#      calls shed (fraudwall_overload_shed_total by action, from /metrics), failed calls by
#      reason (a 503 is "unexpected" to the UAC, so a shed call is a failed call there; any
#      FailedRegexp* is a wrong verdict), peak RSS (VmHWM), overload episodes;
#   3. recovery: RECOVER_RATE (M / 2) for 20 s straight after; from the UAC's per-second
#      statistics, the last second with a failed call, counted from the end of the overload
#      (target: none after 5 s).
#
# Options (defaults in brackets):
#   --harness DIR     prepared harness copy           [$WORK/harness, from prepare.sh]
#   --size N          list size                        [1000000]
#   --work DIR        snapshot and logs                [/tmp/fraudwall-bench]
#   --bin PATH        fraudwall binary                 [$WORK/fraudwall]
#   --proxy-cpu C     CPU fraudwall is pinned to       [0]
#   --sipp-cpu C      CPU both sipp processes use      [1]
#   --max M           skip step 1, take M as the max sustained rate
#   --factor F        overload factor                  [2]
#   --secs S          overload duration                [60]
#   --rates LIST      ramp rates for step 1            [2000,4000,6000,8000,10000,12000]
#   --quota PCT       also cap fraudwall at PCT % of one core (cgroup v1 cpu controller,
#                     period 10 ms), for a box where sipp on one core cannot offer 2x what
#                     fraudwall on the other can carry; the report says so
#   --config FILE     fraudwall config (e.g. an [overload] variant)
#   --decision-log T  stdout (into WORK/overload.out), off or a path [off]
# Prints "OVERLOAD ..." summary lines, appended to $WORK/overload.txt.
# Runs: about 2 minutes for step 1, SECS + 30 s for steps 2 and 3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SIZE=1000000
WORK=/tmp/fraudwall-bench
BIN=""
HARNESS=""
PCPU=0
SCPU=1
MAX=""
FACTOR=2
SECS=60
RATES=2000,4000,6000,8000,10000,12000
QUOTA=""
CONFIG=()
DLOG=off
while [ $# -gt 0 ]; do
  case "$1" in
    --harness) HARNESS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --proxy-cpu) PCPU=$2; shift 2 ;;
    --sipp-cpu) SCPU=$2; shift 2 ;;
    --max) MAX=$2; shift 2 ;;
    --factor) FACTOR=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --quota) QUOTA=$2; shift 2 ;;
    --config) CONFIG=(--config "$2"); shift 2 ;;
    --decision-log) DLOG=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,37p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BIN=${BIN:-$WORK/fraudwall}
HARNESS=${HARNESS:-$WORK/harness}
SNAP="$WORK/list-$SIZE.fwsnap"
CALLERS="$WORK/callers-$SIZE.csv"
for f in "$BIN" "$SNAP" "$CALLERS" "$HARNESS/run_load.py"; do
  [ -e "$f" ] || { echo "missing $f: run integration/bench/run_ab.sh once (or run_fraudwall.sh --load-only and prepare.sh)" >&2; exit 2; }
done
OUT="$WORK/overload.txt"
STAMP=$(date +%Y%m%d-%H%M%S)
RES="$WORK/overload-$STAMP"
mkdir -p "$RES"
say() { echo "$*" | tee -a "$OUT"; }

taskset -c "$PCPU" "$BIN" run --blocklist "$SNAP" --listen 127.0.0.1:5060 --next-hop 127.0.0.1:5070 \
  --admin 127.0.0.1:9060 --workers 1 --decision-log "$DLOG" --log-level warn "${CONFIG[@]}" \
  >"$RES/fraudwall.out" 2>"$RES/fraudwall.err" &
PID=$!
CG=""
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  if [ -n "$CG" ]; then rmdir "$CG" 2>/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  curl -fs 127.0.0.1:9060/healthz >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$RES/fraudwall.err" >&2; exit 1; }
  sleep 0.05
done
if [ -n "$QUOTA" ]; then
  CG=/sys/fs/cgroup/cpu/fraudwall-overload-$$
  mkdir "$CG"
  echo 10000 > "$CG/cpu.cfs_period_us"
  echo $((QUOTA * 100)) > "$CG/cpu.cfs_quota_us"
  for t in /proc/$PID/task/*; do echo "${t##*/}" > "$CG/tasks"; done
fi
say "== overload $STAMP: fraudwall pid $PID on CPU $PCPU (1 UDP worker${QUOTA:+, quota $QUOTA % of a core}), sipp on CPU $SCPU, results $RES"

load() { # label extra run_load.py options...
  local label=$1; shift
  (cd "$HARNESS" && ./run_load.py --label "$label" --target 127.0.0.1:5060 --uas 127.0.0.1:5070 \
    --proxy-pid "$PID" --callers "$CALLERS" --taskset-uac "taskset -c $SCPU" --taskset-uas "taskset -c $SCPU" \
    --out "$RES/$label" "$@") 2>&1 | tee -a "$RES/run.log" | grep -E '^(RESULT|  (warmup|ramp|refine|fixed)-)' || true
}
metric() { curl -fs 127.0.0.1:9060/metrics | awk -v s="$1" 'index($0, s) == 1 { v = $2 } END { print v + 0 }'; }

# 1. The max sustained rate, pinned.
if [ -z "$MAX" ]; then
  load max --rates "$RATES" --step-secs 10 --refine 2 --skip-fixed --skip-latency "$@" | tee -a "$OUT"
  MAX=$(python3 -c "import json; print(json.load(open('$RES/max/summary.json'))['max_cps'] or 0)")
  [ "$MAX" -gt 0 ] || { say "OVERLOAD no rate passed in step 1"; exit 1; }
fi
RATE=$(python3 -c "print(int($MAX * $FACTOR))")
RECOVER=${RECOVER_RATE:-$((MAX / 2))}
say "OVERLOAD max_sustained_cps=$MAX overload_cps=$RATE (${FACTOR}x) for ${SECS}s, recovery at $RECOVER cps"

# 2. FACTOR x for SECS seconds; 3. recovery straight after (no warm-up, no settling).
SHED_R0=$(metric 'fraudwall_overload_shed_total{action="reject"}')
SHED_D0=$(metric 'fraudwall_overload_shed_total{action="drop"}')
load overload --skip-ramp --warmup-secs 0 --settle-secs 0 --fixed-rate "$RATE" --fixed-secs "$SECS" \
  --fixed-repeat 1 --skip-latency --max-fail-pct 100 --max-retrans-pct 100 --min-rate-pct 0 "$@" | tee -a "$OUT"
T_END=$(date +%s.%N)
load recovery --skip-ramp --warmup-secs 0 --settle-secs 0 --fixed-rate "$RECOVER" --fixed-secs 20 \
  --fixed-repeat 1 --skip-latency "$@" | tee -a "$OUT"
SHED_R=$(python3 -c "print(int($(metric 'fraudwall_overload_shed_total{action="reject"}') - $SHED_R0))")
SHED_D=$(python3 -c "print(int($(metric 'fraudwall_overload_shed_total{action="drop"}') - $SHED_D0))")
EPISODES=$(metric 'fraudwall_overload_episodes_total')
HWM=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' /proc/$PID/status)
RSS=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' /proc/$PID/status)
KERNEL_DROPS=$(awk 'NR > 1 && $2 ~ /:13C4$/ { d += $NF } END { print d + 0 }' /proc/net/udp)

python3 - "$RES" "$MAX" "$RATE" "$SECS" "$T_END" "$SHED_R" "$SHED_D" "$EPISODES" "$HWM" "$RSS" "$KERNEL_DROPS" <<'PY' | tee -a "$OUT"
import csv, glob, json, os, sys
res, mx, rate, secs, t_end, shed_r, shed_d, episodes, hwm, rss, kdrops = sys.argv[1:]
mx, rate, secs, t_end = int(mx), int(rate), float(secs), float(t_end)
step = json.load(open(glob.glob(os.path.join(res, "overload", "fixed-*", "step.json"))[0]))
good = step["successful"] / secs
fb = step.get("failed_breakdown", {})
wrong = sum(v for k, v in fb.items() if k.startswith("FailedRegexp"))
print(f"OVERLOAD goodput_cps={good:.0f} ({100 * good / mx:.1f}% of max {mx}; target >= 90%) "
      f"offered={step['created']} ok={step['successful']} failed={step['failed']} "
      f"retrans={step['retransmissions']} achieved_offer_cps={step['achieved_cps']} "
      f"shed_reject={shed_r} shed_drop={shed_d} overload_episodes={episodes} "
      f"verdict_failures={wrong} failed_by_reason={json.dumps(fb)} "
      f"peak_rss_mb={hwm} rss_after_mb={rss} proxy_cpu={step['cpu']['proxy_pct']}% "
      f"sipp_cpu={step['cpu']['uac_pct']}+{step['cpu']['uas_pct']}% port5060_kernel_drops={kdrops}")
if step["achieved_cps"] < 0.95 * rate:
    print(f"OVERLOAD warning: sipp offered only {step['achieved_cps']} of {rate} calls/s: the load "
          "generator, not the proxy, was the limit (try --quota)")
# Recovery: the UAC's per-second rows (cumulative counters), from the end of the overload.
rows = list(csv.DictReader(open(glob.glob(os.path.join(res, "recovery", "fixed-*", "uac_stat.csv"))[0]), delimiter=";"))
rstep = json.load(open(glob.glob(os.path.join(res, "recovery", "fixed-*", "step.json"))[0]))
t0 = os.path.getmtime(os.path.join(res, "recovery", "fixed-" + str(rstep["target_cps"]) + "-1", "uac_cmd.txt"))
last_fail, prev = None, 0
for r in rows:
    failed = int(float(r.get("FailedCall(C)", 0) or 0))
    # sipp writes HH:MM:SS:micro
    parts = [float(x) for x in (r.get("ElapsedTime(C)") or "0:0:0:0").split(":")] + [0, 0, 0, 0]
    at = t0 - t_end + parts[0] * 3600 + parts[1] * 60 + parts[2] + parts[3] / 1e6
    if failed > prev:
        last_fail = at
    prev = failed
print(f"OVERLOAD recovery: {rstep['successful']} ok, {rstep['failed']} failed at {rstep['target_cps']} cps; "
      + ("no failed call after the overload" if last_fail is None
         else f"last failed call {last_fail:.1f} s after the overload ended (target <= 5 s)"))
PY
