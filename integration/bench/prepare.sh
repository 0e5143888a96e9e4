#!/usr/bin/env bash
# Prepare an A/B comparison: a private copy of the shared sipp harness (scripts and scenarios;
# data symlinked) whose UAC accepts "X-Fraud-Label: suspected-fraud" with parameters
# (fraudwall writes "suspected-fraud;category=..;score=.."; the harness README asks to relax
# the regexp for such labels; Kamailio's plain label still passes), and the caller file both
# proxies are driven with.
#
#   integration/bench/prepare.sh SNAPSHOT [HARNESS] [SIZE] [WORK]
#
# CALLEE=+8613000000042 makes the UAC call that number instead of sipp's "service" user, so
# the callee is a number the rule chain's subscriber stage looks up (both proxies get it).
# REDIRECT=1 replaces the UAC with integration/bench/uac_fraud_redirect.xml, for fraudwall's
# redirect mode (the 302 or 608 is the call's verdict; nothing reaches the UAS).
# CALLEES=N instead gives every call its own callee, a random one of the N subscribers of
# `gen_subscribers N` (+8613 and nine digits), as a third field of the callers file.
#
# Callers file: the harness's callers.csv, less any listed caller that fraudwall's numbering
# profile reads as invalid (so the harness would count it as a wrong verdict). Since numbers in
# international form are checked by length only (src/numbers/plan.rs), none is dropped; the
# script prints the count so a regression shows. The same file drives Kamailio.
set -euo pipefail
SNAP=$1
HARNESS=${2:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/bench/sipp-harness}
SIZE=${3:-1000000}
WORK=${4:-/tmp/fraudwall-bench}
BIN=${BIN:-$WORK/fraudwall}
H="$WORK/harness"
mkdir -p "$H"
cp -a "$HARNESS"/*.py "$HARNESS"/*.sh "$HARNESS"/README.md "$H"/
rm -rf "$H/lib" "$H/kamailio" "$H/scenarios"
cp -a "$HARNESS/lib" "$HARNESS/kamailio" "$HARNESS/scenarios" "$H"/
[ -e "$H/data" ] || ln -s "$HARNESS/data" "$H/data"
sed -i 's/tag: \*x \*suspected-fraud \*)/tag: *x *suspected-fraud[^ ]* *)/' "$H/scenarios/uac_fraud.xml"
grep -q 'suspected-fraud\[^ \]\*' "$H/scenarios/uac_fraud.xml" || { echo "regexp patch failed" >&2; exit 1; }
if [ -n "${REDIRECT:-}" ]; then
  cp "$(dirname "$0")/uac_fraud_redirect.xml" "$H/scenarios/uac_fraud.xml"
fi
if [ -n "${CALLEES:-}" ]; then
  sed -i 's/\[service\]/[field2]/g' "$H/scenarios/uac_fraud.xml"
  grep -q '\[field2\]' "$H/scenarios/uac_fraud.xml" || { echo "callees patch failed" >&2; exit 1; }
elif [ -n "${CALLEE:-}" ]; then
  sed -i "s/\[service\]/${CALLEE}/g" "$H/scenarios/uac_fraud.xml"
  grep -q "$CALLEE" "$H/scenarios/uac_fraud.xml" || { echo "callee patch failed" >&2; exit 1; }
fi

SRC="$HARNESS/data/$SIZE/callers.csv"
OUT="$WORK/callers-$SIZE.csv"
tail -n +2 "$SRC" | cut -d';' -f1 | sed 's/^/+/' | "$BIN" lookup "$SNAP" > "$WORK/callers-lookup.txt"
python3 - "$SRC" "$WORK/callers-lookup.txt" "$OUT" "${CALLEES:-0}" <<'PY'
import random, sys
src, looked, out, callees = sys.argv[1:]
callees = int(callees)
rnd = random.Random(1)
lines = open(src).read().splitlines()
verdicts = [l.split("\t")[2].split(" ")[0] for l in open(looked).read().splitlines()]
assert len(verdicts) == len(lines) - 1, (len(verdicts), len(lines))
kept, dropped = [lines[0]], 0
for line, v in zip(lines[1:], verdicts):
    expected = line.split(";")[1]
    if expected != "allow" and v == "invalid":
        dropped += 1
        continue
    if callees:
        line += ";+8613%09d" % rnd.randrange(callees)
    kept.append(line)
open(out, "w").write("\n".join(kept) + "\n")
print(f"callers: {len(lines) - 1} in {src}, {dropped} listed callers dropped (invalid numbers), {len(kept) - 1} kept -> {out}")
PY
