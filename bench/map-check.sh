#!/usr/bin/env bash
# Issue 2 benchmark: map and check against qemu-img on
#  (a) a 64 GiB qcow2 with 4 KiB clusters and metadata preallocation (16 M mapped clusters)
#  (b) a 4 TiB-virtual qcow2 with scattered 64 KiB writes
# Whole-process wall time (JVM start-up included), median of RUNS, warm cache
# (both tools read the same metadata; cold-cache figures: COLD=1). Also the
# max RSS, and diskmorph under -Xmx64m to show the heap does not grow with
# the virtual size.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${RUNS:-3}"
pre="$BENCH_DIR/prealloc-64g-4k.qcow2"
sparse="$BENCH_DIR/sparse-4t.qcow2"

if [ ! -f "$pre" ]; then
  echo "creating $pre"
  qemu-img create -q -f qcow2 -o cluster_size=4096,preallocation=metadata "$pre" 64G
fi
if [ ! -f "$sparse" ]; then
  echo "creating $sparse (scattered writes)"
  qemu-img create -q -f qcow2 "$sparse" 4T
  cmds=()
  for i in $(seq 0 1999); do
    off=$(( (i * 2199023255 + (i * i * 7919) % 1000000007) % (4 * 1024 * 1024 * 1024 * 1024 - 65536) / 65536 * 65536 ))
    cmds+=(-c "write -P $((i % 250 + 1)) $off 64k")
  done
  qemu-io "${cmds[@]}" "$sparse" >/dev/null
fi

warm_aot map --output=json "$sparse"
warm_aot check "$sparse"

bench() { # name image
  local name="$1" img="$2"
  for op in map check; do
    local q=() d=()
    for r in $(seq "$RUNS"); do
      [ "${COLD:-0}" = 1 ] && drop_caches
      if [ "$op" = map ]; then run_timed "qemu-img map $name" qemu-img map --output=json "$img"; else run_timed "qemu-img check $name" qemu-img check "$img"; fi
      q+=("$T")
      [ "${COLD:-0}" = 1 ] && drop_caches
      if [ "$op" = map ]; then run_timed "diskmorph map $name" "$DM" map --output=json "$img"; else run_timed "diskmorph check $name" "$DM" check "$img"; fi
      d+=("$T")
    done
    local qm dm; qm=$(printf '%s\n' "${q[@]}" | median); dm=$(printf '%s\n' "${d[@]}" | median)
    echo "RESULT $op $name: qemu-img ${qm}s diskmorph ${dm}s ratio(diskmorph/qemu) $(ratio "$dm" "$qm")"
  done
  DISKMORPH_JVM_OPTS="-Xmx64m" run_timed "diskmorph map $name with -Xmx64m" "$DM" map --output=json "$img"
  DISKMORPH_JVM_OPTS="-Xmx64m" run_timed "diskmorph check $name with -Xmx64m" "$DM" check "$img"
}

echo "== map/check, 64 GiB qcow2, 4 KiB clusters, preallocation=metadata"
bench prealloc-64g "$pre"
echo "== map/check, 4 TiB-virtual qcow2, 2000 scattered 64 KiB writes"
bench sparse-4t "$sparse"
