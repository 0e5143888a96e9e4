#!/bin/sh
# Rebuilds the seed corpus of the `subscribers_open` fuzz target: a few small subscriber lists
# compiled by fraudwall, each prefixed with the mode byte 1 (the target re-hashes the body of
# such inputs, so mutations reach the directory check and the block decoder).
# Usage: fuzz/make_subscribers_corpus.sh [path/to/fraudwall]   (default: target/release/fraudwall)
set -eu
bin=${1:-target/release/fraudwall}
out=$(dirname "$0")/corpus/subscribers_open
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# Every entry kind, levels, a subscriber with no entries but a level.
cat > "$tmp/kinds.csv" <<'CSV'
subscriber,caller,action
+8613900000001,+8613800000001,allow
+8613900000001,+86170*,block
+8613900000001,+8617012*,allow
+8613900000001,+8617012345678,block
+8613900000001,*,tag
+8613900000002,*,block
+8613900000003,+8613800000001,block
+12025550100,+1*,block
+447700900123,*,allow
CSV
: > "$tmp/empty.csv"; echo "subscriber,caller,action" > "$tmp/empty.csv"
# Dense numbers: several blocks and nodes, every node but the last predicted.
{ echo "subscriber,caller,action"; i=0; while [ $i -lt 1200 ]; do
    printf '+86139%08d,+86170%08d,block\n' $i $((i * 7919 % 100000000)); i=$((i + 1)); done; } > "$tmp/dense.csv"
# A gap, +1 and +86 mixed, and one subscriber with many entries (a block of its own).
{ echo "subscriber,caller,action"; i=0; while [ $i -lt 300 ]; do
    printf '+1202555%04d,+1*,block\n' $i
    printf '+86139%08d,*,tag\n' $((i * 333333))
    printf '+8613999999999,+4477009%05d,block\n' $((i * 3)); i=$((i + 1)); done; } > "$tmp/mixed.csv"

for name in kinds empty dense mixed; do
    "$bin" compile --kind subscribers --output "$tmp/$name.fwb" "$tmp/$name.csv" > /dev/null
    { printf '\001'; cat "$tmp/$name.fwb"; } > "$out/$name"
done
ls -l "$out"
