#!/usr/bin/env bash
# Issue 17 benchmark: a qcow2 written in random order (fragmented: its clusters
# lie in write order, not guest order) -> raw.
#   in place:  diskmorph convert --in-place -O raw IMAGE   (durable when it ends)
#   the copy:  qemu-img convert -O raw IMAGE COPY; sync COPY; rm IMAGE
# Each run starts from a fresh copy of the source (not timed) and a cold page
# cache; the two tools alternate RUNS times (default 3): wall time min / median
# / max, and the peak extra disk space over the source's own allocation
# (du of the work directory sampled every 50 ms).
# SIZE (default 4G) is the virtual size; CLUSTER (default 64k) the qcow2
# cluster size; the image is fully written, in 64 KiB pieces in random order.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need python3
SIZE="${SIZE:-4G}"
CLUSTER="${CLUSTER:-64k}"
bytes=$(numfmt --from=iec "$SIZE")
src="$BENCH_DIR/random-order-$SIZE-$CLUSTER.qcow2"
work="$BENCH_DIR/raw-work"
mkdir -p "$work"

if [ ! -f "$src" ]; then
  echo "creating $src ($SIZE written in 64 KiB pieces in random order)"
  qemu-img create -q -f qcow2 -o cluster_size="$CLUSTER" "$src.tmp" "$SIZE"
  python3 - "$bytes" > "$BENCH_DIR/writes.txt" <<'PY'
import random, sys
n = int(sys.argv[1]) // 65536
order = list(range(n))
random.Random(17).shuffle(order)
for i in order:
    print("write -P %d %d 64k" % (1 + i % 251, i * 65536))
PY
  qemu-io -f qcow2 "$src.tmp" < "$BENCH_DIR/writes.txt" > /dev/null
  rm -f "$BENCH_DIR/writes.txt"
  mv "$src.tmp" "$src"
fi
qemu-img check -q "$src"

# peak_du_start / peak_du_stop: the largest du -sk of $work while a command ran, in KiB
peak_du_start() {
  touch "$work/.sampling"
  ( max=0; while [ -e "$work/.sampling" ]; do
      v=$(du -sk "$work" 2>/dev/null | cut -f1); [ "${v:-0}" -gt "$max" ] && max=$v && echo "$max" > "$work/.peak"
      sleep 0.05
    done ) &
  SAMPLER=$!
}
peak_du_stop() { rm -f "$work/.sampling"; wait "$SAMPLER" 2>/dev/null || true; PEAK=$(cat "$work/.peak"); rm -f "$work/.peak"; }

fresh() { rm -f "$work"/*; cp --sparse=always "$src" "$work/img.qcow2"; sync; BASE=$(du -sk "$work" | cut -f1); drop_caches; }

warm="$BENCH_DIR/warm-64m.qcow2"
qemu-img create -q -f qcow2 "$warm" 64M; qemu-io -c "write -P 1 1M 8M" "$warm" >/dev/null
warm_aot convert --in-place -O raw "$warm"
rm -f "$warm"

qs=(); ds=(); qp=(); dp=()
for run in $(seq "${RUNS:-3}"); do
  fresh
  peak_du_start; t0=$(date +%s.%N)
  qemu-img convert -f qcow2 -O raw "$work/img.qcow2" "$work/copy.raw"; sync "$work/copy.raw"; rm "$work/img.qcow2"
  tq=$(echo "$(date +%s.%N) - $t0" | bc); peak_du_stop; pq=$((PEAK - BASE))
  fresh
  peak_du_start; t0=$(date +%s.%N)
  "$DM" convert --in-place -O raw --output=json "$work/img.qcow2" > "$BENCH_DIR/raw-plan.json"
  td=$(echo "$(date +%s.%N) - $t0" | bc); peak_du_stop; pd=$((PEAK - BASE))
  [ "$(stat -c %s "$work/img.qcow2")" = "$bytes" ] || { echo "bench: wrong length" >&2; exit 1; }
  echo "  run $run: qemu-img convert + rm ${tq}s, peak extra $((pq / 1024)) MiB; in place ${td}s, peak extra" \
       "$((pd / 1024)) MiB ($(ratio "$td" "$tq")x the copy's time)"
  qs+=("$tq"); ds+=("$td"); qp+=("$pq"); dp+=("$pd")
done
qemu-img convert -f qcow2 -O raw "$src" "$work/check.raw"
qemu-img compare -q -f raw -F raw "$work/img.qcow2" "$work/check.raw" && echo "  content: equal to qemu-img's copy"
rm -f "$work"/*
stats() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%s / %s / %s", a[1], (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[NR]}'; }
echo "$SIZE qcow2 ($CLUSTER clusters, written in random order) -> raw, ${RUNS:-3} runs, min / median / max:"
echo "  qemu-img convert -O raw + rm:  $(stats "${qs[@]}") s, peak extra disk $(stats "${qp[@]}") KiB"
echo "  diskmorph --in-place -O raw:   $(stats "${ds[@]}") s, peak extra disk $(stats "${dp[@]}") KiB"
python3 -c "import json; p=json.load(open('$BENCH_DIR/raw-plan.json')); print('  plan: moved', p['moved-bytes'], 'bytes; extra-space bound', p['extra-space'], 'bytes; phases', p['phase-seconds'])"
