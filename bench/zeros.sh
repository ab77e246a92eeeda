#!/usr/bin/env bash
# Zeros and holes (issue 12): in-place conversion never moves or allocates what reads zeros.
#  case 1: a 64 GiB qcow2 with 4 KiB clusters and preallocation=metadata (16 M mapped clusters whose data
#          are holes of the file), to qcow2 with 64 KiB clusters and to QED, in place vs `qemu-img convert`
#          to a new file: cold page cache, timed until durable, the two tools alternating, RUNS times;
#          extra allocated disk sampled every 10 ms during the run (du of image + journal), qemu-img check
#          and compare (against qemu-img's own copy) after every run; the heap capped at -Xmx256m.
#  case 2: a 4 TiB sparse raw with five 1 MiB writes, made qcow2 in place, then QED in place: time, extra
#          allocated disk, qemu-img map's data bytes before and after.
#  scaling: time per mapped cluster at 1 M, 4 M and 16 M clusters (4, 16, 64 GiB), to qcow2 64 KiB.
# Each source is restored from a pristine copy (cp --sparse=always) before every in-place run, untimed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${RUNS:-3}"
CASES="${CASES:-1 2 scaling}" # which parts to run
SIZE="${SIZE:-64G}"
export DISKMORPH_JVM_OPTS="${DISKMORPH_JVM_OPTS:--Xmx256m}"
need python3; need bc

pristine="$BENCH_DIR/prealloc-$SIZE.pristine.qcow2"
img="$BENCH_DIR/prealloc.qcow2"
copy="$BENCH_DIR/prealloc-copy"

warm="$BENCH_DIR/warm-zeros.qcow2"
qemu-img create -q -f qcow2 -o cluster_size=4096,preallocation=metadata "$warm" 64M
warm_aot convert --in-place -O qed "$warm"
rm -f "$warm"

make_prealloc() { # size path
  qemu-img create -q -f qcow2 -o cluster_size=4096,preallocation=metadata "$2" "$1"
  # some data too, so the comparison has something to compare
  qemu-io -f qcow2 -c "write -P 0x5a 1M 4M" -c "write -P 0x5b $(( $(numfmt --from=iec "$1") / 2 ))" \
    -c "write -P 0x5c $(( $(numfmt --from=iec "$1") - (1 << 20) )) 1M" "$2" >/dev/null 2>&1 || true
}

# blocks (bytes) the image and its journal occupy now
allocated() { { du -B1 -c "$1" "$1.dmjournal" 2>/dev/null || true; } | tail -1 | cut -f1; }

# sample_peak FILE PID: prints the highest allocation seen while PID runs (every 10 ms)
sample_peak() {
  local f="$1" pid="$2" peak=0 a
  while kill -0 "$pid" 2>/dev/null; do
    a=$(allocated "$f"); [ "$a" -gt "$peak" ] && peak=$a
    sleep 0.01
  done
  a=$(allocated "$f"); [ "$a" -gt "$peak" ] && peak=$a
  echo "$peak"
}

# inplace LABEL SOURCE-PRISTINE IMAGE ARGS...: restore, cold cache, time the in-place run until it
# returns (it syncs before returning), sample the extra allocation; prints seconds in $T, extra in $X
inplace() {
  local label="$1" src="$2" im="$3"; shift 3
  rm -f "$im" "$im.dmjournal"; cp --sparse=always "$src" "$im"; sync "$im"
  local before; before=$(allocated "$im")
  drop_caches
  local t0; t0=$(date +%s.%N)
  "$DM" convert --in-place --output=json "$@" "$im" > "$BENCH_DIR/plan.json" &
  local pid=$!
  local peak; peak=$(sample_peak "$im" "$pid")
  wait "$pid"
  T=$(echo "$(date +%s.%N) - $t0" | bc)
  X=$(( peak > before ? peak - before : 0 ))
  local bound; bound=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["extra-space"])' "$BENCH_DIR/plan.json")
  printf '  %-34s in place %7.3f s; extra allocated %s (plan bound %s)\n' "$label" "$T" \
    "$(numfmt --to=iec "$X")" "$(numfmt --to=iec "$bound")"
  [ "$X" -le "$bound" ] || echo "  !! the run allocated more than its plan announced"
}

# qemu LABEL SRC TARGET-FMT ARGS...: qemu-img convert to a new file, cold cache, until durable
qemu_copy() {
  local src="$1" fmt="$2"; shift 2
  rm -f "$copy.$fmt"; drop_caches
  local t0; t0=$(date +%s.%N)
  qemu-img convert -f qcow2 -O "$fmt" "$@" "$src" "$copy.$fmt"; sync "$copy.$fmt"
  Q=$(echo "$(date +%s.%N) - $t0" | bc)
}

if [[ " $CASES " == *" 1 "* ]]; then
echo "== case 1: $SIZE qcow2, 4 KiB clusters, preallocation=metadata (heap: $DISKMORPH_JVM_OPTS)"
[ -f "$pristine" ] || make_prealloc "$SIZE" "$pristine"
echo "  source: $(du -h "$pristine" | cut -f1) on disk, $(qemu-img info --output=json "$pristine" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])') bytes virtual"
for target in "qcow2 -o cluster_size=65536" "qed"; do
  set -- $target
  fmt="$1"; shift
  qs=(); ds=(); xs=()
  for run in $(seq "$RUNS"); do
    qemu_copy "$pristine" "$fmt" "$@"
    inplace "-> $fmt $* (run $run)" "$pristine" "$img" -O "$fmt" "$@"
    check=$(qemu-img check -f "$fmt" "$img" >/dev/null 2>&1 && echo clean || echo "NOT CLEAN")
    cmp=$(qemu-img compare -f "$fmt" -F "$fmt" "$img" "$copy.$fmt" >/dev/null 2>&1 && echo identical || echo DIFFERENT)
    printf '  %-34s qemu-img convert %7.3f s (speed-up %sx); qemu-img check %s, compare %s; file %s on disk (qemu-img copy %s)\n' \
      "" "$Q" "$(ratio "$Q" "$T")" "$check" "$cmp" "$(du -h "$img" | cut -f1)" "$(du -h "$copy.$fmt" | cut -f1)"
    qs+=("$Q"); ds+=("$T"); xs+=("$X")
  done
  echo "RESULT case 1 -> $fmt $*: qemu-img convert median $(printf '%s\n' "${qs[@]}" | median) s; in place min/median/max $(printf '%s\n' "${ds[@]}" | sort -g | head -1) / $(printf '%s\n' "${ds[@]}" | median) / $(printf '%s\n' "${ds[@]}" | sort -g | tail -1) s; extra allocated max $(numfmt --to=iec "$(printf '%s\n' "${xs[@]}" | sort -g | tail -1)")"
done
rm -f "$copy".* "$img"
/usr/bin/time -f "%e %M" -o "$BENCH_DIR/rss" true
cp --sparse=always "$pristine" "$img"; sync
/usr/bin/time -f "%e %M" -o "$BENCH_DIR/rss" "$DM" convert --in-place -O qed "$img" >/dev/null
echo "RESULT case 1 heap: -> qed with $DISKMORPH_JVM_OPTS: $(cut -d' ' -f1 "$BENCH_DIR/rss") s, max RSS $(cut -d' ' -f2 "$BENCH_DIR/rss") KiB"
rm -f "$img"
fi

if [[ " $CASES " == *" 2 "* ]]; then
echo "== case 2: 4 TiB sparse raw, five 1 MiB writes, -> qcow2 in place, then -> QED in place"
r="$BENCH_DIR/sparse4t.img"; rp="$BENCH_DIR/sparse4t.qcow2.pristine"
rm -f "$r" "$rp"; truncate -s 4T "$r"
for o in 0 1T 2T 3T 4095G; do qemu-io -f raw -c "write -P 9 $o 1M" "$r" >/dev/null; done
"$DM" convert --in-place -O qcow2 "$r" >/dev/null
cp --sparse=always "$r" "$rp"
data_bytes() { qemu-img map --output=json "$1" | python3 -c 'import json,sys; print(sum(e["length"] for e in json.load(sys.stdin) if e["data"]))'; }
src_data=$(data_bytes "$rp")
ts=(); xs=()
for run in $(seq "$RUNS"); do
  inplace "qcow2 -> qed (run $run)" "$rp" "$r" -O qed
  ts+=("$T"); xs+=("$X")
  check=$(qemu-img check "$r" >/dev/null 2>&1 && echo clean || echo "NOT CLEAN")
  echo "  qemu-img check $check; qemu-img map data bytes: source $src_data, QED $(data_bytes "$r"); file $(du -h "$r" | cut -f1) on disk"
done
echo "RESULT case 2: in place min/median/max $(printf '%s\n' "${ts[@]}" | sort -g | head -1) / $(printf '%s\n' "${ts[@]}" | median) / $(printf '%s\n' "${ts[@]}" | sort -g | tail -1) s; extra allocated max $(numfmt --to=iec "$(printf '%s\n' "${xs[@]}" | sort -g | tail -1)"); data bytes $src_data -> $(data_bytes "$r")"
rm -f "$r" "$rp"
fi

[[ " $CASES " == *" scaling "* ]] || exit 0
echo "== scaling: preallocated 4 KiB-cluster qcow2 -> qcow2 64 KiB in place, cold cache"
for s in 4G 16G 64G; do
  p="$BENCH_DIR/scale-$s.pristine.qcow2"
  if [ "$s" = "$SIZE" ]; then p="$pristine"; else [ -f "$p" ] || make_prealloc "$s" "$p"; fi
  clusters=$(( $(numfmt --from=iec "$s") / 4096 ))
  inplace "$s ($clusters clusters)" "$p" "$img" -O qcow2 -o cluster_size=65536
  survey=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["phase-seconds"]["survey"])' "$BENCH_DIR/plan.json")
  echo "RESULT scaling $s: $clusters mapped clusters, $T s, $(echo "scale=1; $T * 1000000000 / $clusters" | bc) ns per mapped cluster (survey $survey s)"
  [ "$p" = "$pristine" ] || rm -f "$p"
done
rm -f "$img"
