#!/usr/bin/env bash
# Two configurations of the same fraudwall build, alternately, in one sitting, at one fixed
# rate through the sipp harness: the CPU per call of each run, the medians and their ratio.
# This is how the "within N % of the same build with X off" targets are measured: issue 11
# (the whole chain against the chain reduced to the global list) and issue 13 (detection on
# against off).
#
#   A_OPTS="..." B_OPTS="..." BIN=target/release/fraudwall \
#     integration/bench/run_variants.sh [ROUNDS] [-- run_load.py options]
#
# A_OPTS and B_OPTS are run_fraudwall.sh options (--config FILE, --subscribers F, ...); both get
# --decision-log off unless they say otherwise. A_NAME and B_NAME label them [a, b]. Each round
# runs A then B, the next round B then A (the box drifts; alternate). Defaults: 3 rounds of
# --skip-ramp --skip-latency --warmup-secs 5 --fixed-rate 2000 --fixed-secs 15 --fixed-repeat 1
# (RATE overrides 2000). The harness copy is prepared by prepare.sh first (CALLEE=+86... makes
# every call go to that callee, CALLEES=N to one of N generated subscribers: see prepare.sh).
# RESULT lines go to $WORK/variants.txt; the last lines printed are the summary.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESS=${HARNESS:-$(cd "$HERE/../../.." && pwd)/shared/bench/sipp-harness}
SIZE=${SIZE:-1000000}
WORK=${WORK:-/tmp/fraudwall-bench}
BIN=$(realpath "${BIN:-target/release/fraudwall}")
RATE=${RATE:-2000}
A_NAME=${A_NAME:-a}
B_NAME=${B_NAME:-b}
ROUNDS=${1:-3}; [ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- --skip-ramp --skip-latency --warmup-secs 5 --fixed-rate "$RATE" --fixed-secs 15 --fixed-repeat 1
mkdir -p "$WORK"
OUT="$WORK/variants.txt"
"$HERE/run_fraudwall.sh" --bin "$BIN" --size "$SIZE" --work "$WORK" --harness "$HARNESS" --load-only | tee -a "$OUT"
BIN=$BIN "$HERE/prepare.sh" "$WORK/list-$SIZE.fwsnap" "$HARNESS" "$SIZE" "$WORK" | tee -a "$OUT"
CALLERS="$WORK/callers-$SIZE.csv"
TAGGED=$(mktemp)
trap 'rm -f "$TAGGED"' EXIT

one() { # name opts...
  local name=$1; shift
  echo "== $name $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT"
  # shellcheck disable=SC2068
  "$HERE/run_fraudwall.sh" --bin "$BIN" --size "$SIZE" --work "$WORK" --harness "$WORK/harness" \
    --decision-log off $@ -- --callers "$CALLERS" "${RUN_ARGS[@]}" 2>&1 \
    | grep -E '^(RESULT|  fixed-|fraudwall (pid|load))' | tee -a "$OUT" \
    | sed -n "s/^RESULT /$name /p" >> "$TAGGED" || true
}
RUN_ARGS=("$@")
for i in $(seq 1 "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then
    one "$A_NAME" "${A_OPTS:-}"; one "$B_NAME" "${B_OPTS:-}"
  else
    one "$B_NAME" "${B_OPTS:-}"; one "$A_NAME" "${A_OPTS:-}"
  fi
done
python3 - "$TAGGED" "$A_NAME" "$B_NAME" <<'PY' | tee -a "$OUT"
import re, statistics, sys
path, a, b = sys.argv[1:]
runs = {a: [], b: []}
bad = []
lat = {a: [], b: []}
for line in open(path):
    name, rest = line.split(" ", 1)
    us = re.search(r"proxy_us_per_call=([0-9.]+)", rest)
    if us is None:
        bad.append(name)
        continue
    runs[name].append(float(us.group(1)))
    t = re.search(r"transit_us@\d+cps\(p50/p99/p99\.9\)=([0-9.]+)/([0-9.]+)/", rest)
    if t:
        lat[name].append((float(t.group(1)), float(t.group(2))))
    if "fixed_ok=True" not in rest:
        bad.append(name)
med = statistics.median
print(f"summary: CPU µs per call, {len(runs[a])} runs of {a}, {len(runs[b])} of {b}")
for name in (a, b):
    print(f"  {name}: " + ", ".join(f"{v:.1f}" for v in runs[name])
          + (f"  median {med(runs[name]):.1f}" if runs[name] else "  (no result)"))
if runs[a] and runs[b]:
    ma, mb = med(runs[a]), med(runs[b])
    print(f"  {b} / {a} = {mb / ma:.3f} ({(mb / ma - 1) * 100:+.1f} %)")
if lat[a] and lat[b]:
    print("transit µs (p50/p99) per run, medians, ratio:")
    for name in (a, b):
        print(f"  {name}: " + ", ".join(f"{p50:.0f}/{p99:.0f}" for p50, p99 in lat[name])
              + f"  median {med(x for x, _ in lat[name]):.0f}/{med(y for _, y in lat[name]):.0f}")
    for i, q in ((0, "p50"), (1, "p99")):
        ra = med(x[i] for x in lat[a]); rb = med(x[i] for x in lat[b])
        print(f"  {q} {b} / {a} = {rb / ra:.3f}")
if bad:
    print(f"  WARNING: {len(bad)} run(s) missed the fixed rate or failed calls: {', '.join(bad)}")
PY
