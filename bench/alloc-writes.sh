#!/usr/bin/env bash
# Why a copy's target allocates each large write first (FileStorage.allocateBeforeLargeWrites):
# the same 1.4 GB written into the page cache in 2 MiB pwrite()s from a mapping, plainly and with
# fallocate() of each write's range before it, RUNS times each (default 5), alternating; page cache
# emptied, the source read in and memory warmed before every run, as bench/convert.sh does. Needs cc
# and the QED source bench/convert.sh makes (run that first).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${RUNS:-5}"
need cc
src="$BENCH_DIR/copy-src.qed"
[ -f "$src" ] || { echo "bench: $src is missing; bench/convert.sh makes it" >&2; exit 1; }
out="$BENCH_DIR/alloc-writes.out"
prog="$BENCH_DIR/alloc-writes"
cc -O2 -Wall -o "$prog" "$here/alloc-writes.c"
echo "filesystem of $BENCH_DIR: $(df --output=fstype "$BENCH_DIR" | tail -1); source $(du -h --apparent-size "$src" | cut -f1)"
plain=(); alloc=()
for r in $(seq "$RUNS"); do
  for mode in 0 1; do
    rm -f "$out"; drop_caches; cat "$src" > /dev/null; warm_memory 6000
    read -r secs blocks < <("$prog" "$src" "$out" "$mode")
    label=plain; [ "$mode" = 1 ] && label="fallocate first"
    echo "  $label: $secs s, $blocks bytes allocated"
    if [ "$mode" = 0 ]; then plain+=("$secs"); else alloc+=("$secs"); fi
  done
done
rm -f "$out"
pm=$(printf '%s\n' "${plain[@]}" | median); am=$(printf '%s\n' "${alloc[@]}" | median)
echo "RESULT 2 MiB writes of the source: plain ${pm}s, fallocate first ${am}s, ratio $(ratio "$am" "$pm")"
