#!/usr/bin/env bash
# Issue 3 benchmark: in-place conversion vs qemu-img convert, cold cache,
# timed until the result is durable (qemu-img's output is synced), the two
# tools alternating RUNS times (default 3), min / median / max.
#  (a) 8 GiB fully written raw -> qcow2
#  (b) 8 GiB QED (fully written) -> qcow2
#  (c) 8 GiB monolithicSparse VMDK (fully written, made by qemu-img convert) -> qcow2
#  (f) 8 GiB dynamic VHDX (fully written, made by qemu-img convert: qemu's default block size) -> qcow2
#  (d) 4 TiB-virtual qcow2 with scattered writes -> qed under -Xmx128m
#  (e) 8 GiB VDI laid out as VirtualBox lays it out (map at 1 MiB, data at 2 MiB; bench/vbox-vdi.py) -> qcow2
#  (g) 8 GiB fully written raw -> dynamic VHDX (KVM to Hyper-V; qemu-img convert -O vhdx: its defaults)
#  (h) 8 GiB fixed VHD (qemu-img convert -O vpc -o subformat=fixed,force_size=on) -> qcow2, and -> raw (the
#      footer dropped: nothing moves)
#  (i) 8 GiB fully written raw -> fixed VHD (Azure; force_size: the footer appended)
# Between runs the in-place result is rolled back (--keep-rollback, rollback).
# CASES picks some of them (default "raw qed vmdk vhdx sparse"; "vdi" for (e), "tovhdx" for (g), "vpc" for (h),
# "tovpc" for (i)).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZE="${SIZE:-8G}"
raw="$BENCH_DIR/full-$SIZE.raw"
qed="$BENCH_DIR/full-$SIZE.qed"
vmdk="$BENCH_DIR/full-$SIZE.vmdk"
vhdx="$BENCH_DIR/full-$SIZE.vhdx"
vdi="$BENCH_DIR/full-$SIZE.vdi"
vpc="$BENCH_DIR/full-$SIZE-fixed.vhd"
CASES="${CASES:-raw qed vmdk vhdx sparse}"
copy="$BENCH_DIR/copy.qcow2"

if [ ! -f "$raw" ]; then
  echo "creating $raw (random data)"
  bytes=$(numfmt --from=iec "$SIZE")
  head -c "$bytes" /dev/urandom > "$raw.tmp" && mv "$raw.tmp" "$raw"
fi
if [ ! -f "$qed" ]; then
  echo "creating $qed"
  qemu-img convert -f raw -O qed "$raw" "$qed"
fi
if [[ " $CASES " == *" vmdk "* ]] && [ ! -f "$vmdk" ]; then
  echo "creating $vmdk (monolithicSparse, qemu's 64 KiB grains)"
  qemu-img convert -f raw -O vmdk "$raw" "$vmdk.tmp" && mv "$vmdk.tmp" "$vmdk"
fi
if [[ " $CASES " == *" vhdx "* ]] && [ ! -f "$vhdx" ]; then
  echo "creating $vhdx (dynamic, qemu's default block size)"
  qemu-img convert -f raw -O vhdx "$raw" "$vhdx.tmp" && mv "$vhdx.tmp" "$vhdx"
fi
if [[ " $CASES " == *" vdi "* ]] && [ ! -f "$vdi" ]; then
  echo "creating $vdi (VirtualBox layout: map at 1 MiB, data at 2 MiB, 1 MiB blocks in guest order)"
  "$(dirname "${BASH_SOURCE[0]}")/vbox-vdi.py" "$raw" "$vdi"
fi
if [[ " $CASES " == *" vpc "* ]] && [ ! -f "$vpc" ]; then
  echo "creating $vpc (fixed, force_size)"
  qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$raw" "$vpc.tmp" && mv "$vpc.tmp" "$vpc"
fi
# the launcher's ahead-of-time caches for 'convert' and 'rollback' are trained at their first runs
warm="$BENCH_DIR/warm-64m.raw"
head -c 16M /dev/urandom > "$warm" && truncate -s 64M "$warm"
warm_aot convert --in-place --keep-rollback -f raw -O qcow2 "$warm"
warm_aot rollback "$warm"
rm -f "$warm"
startup=$( { /usr/bin/time -f "%e" "$DM" --version >/dev/null; } 2>&1 )
drop_caches
cold=$( { /usr/bin/time -f "%e" "$DM" --version >/dev/null; } 2>&1 )
echo "JVM start-up (diskmorph --version): ${startup}s warm, ${cold}s from a cold page cache"

# one LABEL FMT IMAGE [TARGET [OPTS]]: RUNS pairs, the two tools alternating; each run from a cold page cache until
# durable; TARGET defaults to qcow2; OPTS (-o) go to both tools
one() {
  local label="$1" fmt="$2" img="$3" target="${4:-qcow2}" qs=() ds=() tq td
  local o=(); [ -n "${5:-}" ] && o=(-o "$5")
  local copy="$BENCH_DIR/copy.$target"
  for run in $(seq "${RUNS:-3}"); do
    rm -f "$copy"; drop_caches
    local t0; t0=$(date +%s.%N)
    qemu-img convert -f "$fmt" -O "$target" "${o[@]}" "$img" "$copy"; sync "$copy"
    tq=$(echo "$(date +%s.%N) - $t0" | bc)
    rm -f "$copy"; drop_caches
    t0=$(date +%s.%N)
    "$DM" convert --in-place --keep-rollback -f "$fmt" -O "$target" "${o[@]}" --output=json "$img" \
      > "$BENCH_DIR/plan.json"
    td=$(echo "$(date +%s.%N) - $t0" | bc)
    case "$target" in raw|vpc) ;; *) qemu-img check -q -f "$target" "$img" ;; esac # no qemu-img check for these
    "$DM" rollback "$img" >/dev/null
    echo "  run $run: qemu-img convert ${tq}s, in place ${td}s ($(ratio "$tq" "$td")x)"
    qs+=("$tq"); ds+=("$td")
  done
  local extra phases
  extra=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print("%d bytes (%.4f%% of %d); kept %d bytes, moved %d" % (p["extra-space"], 100.0*p["extra-space"]/p["virtual-size"], p["virtual-size"], p["kept-bytes"], p["moved-bytes"]))' "$BENCH_DIR/plan.json")
  phases=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(" ".join("%s=%.3fs" % kv for kv in p["phase-seconds"].items()))' "$BENCH_DIR/plan.json")
  local qmed dmed
  qmed=$(printf '%s\n' "${qs[@]}" | median); dmed=$(printf '%s\n' "${ds[@]}" | median)
  echo "RESULT $label: qemu-img convert min/median/max $(printf '%s\n' "${qs[@]}" | sort -g | head -1) / $qmed / $(printf '%s\n' "${qs[@]}" | sort -g | tail -1) s; in place $(printf '%s\n' "${ds[@]}" | sort -g | head -1) / $dmed / $(printf '%s\n' "${ds[@]}" | sort -g | tail -1) s; median speed-up $(ratio "$qmed" "$dmed")x; extra space $extra"
  echo "  phases (last run): $phases (JVM start-up ${startup}s warm, ${cold}s cold)"
}

if [[ " $CASES " == *" raw "* ]]; then
  echo "== $SIZE fully written raw -> qcow2"
  one "raw->qcow2 $SIZE" raw "$raw"
fi
if [[ " $CASES " == *" qed "* ]]; then
  echo "== $SIZE QED -> qcow2"
  one "qed->qcow2 $SIZE" qed "$qed"
fi
if [[ " $CASES " == *" vmdk "* ]]; then
  echo "== $SIZE monolithicSparse VMDK -> qcow2"
  one "vmdk->qcow2 $SIZE" vmdk "$vmdk"
fi
if [[ " $CASES " == *" vhdx "* ]]; then
  echo "== $SIZE dynamic VHDX -> qcow2"
  one "vhdx->qcow2 $SIZE" vhdx "$vhdx"
fi
if [[ " $CASES " == *" vdi "* ]]; then
  echo "== $SIZE VirtualBox-layout VDI -> qcow2"
  one "vdi->qcow2 $SIZE" vdi "$vdi"
fi
if [[ " $CASES " == *" tovhdx "* ]]; then
  echo "== $SIZE fully written raw -> dynamic VHDX"
  one "raw->vhdx $SIZE" raw "$raw" vhdx
fi
if [[ " $CASES " == *" vpc "* ]]; then
  echo "== $SIZE fixed VHD -> qcow2"
  one "vpc->qcow2 $SIZE" vpc "$vpc"
  echo "== $SIZE fixed VHD -> raw"
  one "vpc->raw $SIZE" vpc "$vpc" raw
fi
if [[ " $CASES " == *" tovpc "* ]]; then
  echo "== $SIZE fully written raw -> fixed VHD"
  one "raw->vpc $SIZE" raw "$raw" vpc subformat=fixed,force_size=on
fi
[[ " $CASES " == *" sparse "* ]] || exit 0

sparse="$BENCH_DIR/sparse-4t-inplace.qcow2"
rm -f "$sparse"
qemu-img create -q -f qcow2 "$sparse" 4T
cmds=()
for i in $(seq 0 499); do
  off=$(( (i * 8796093022 + (i * i * 104729) % 1000000007) % (4 * 1024 * 1024 * 1024 * 1024 - 65536) / 65536 * 65536 ))
  cmds+=(-c "write -P $((i % 250 + 1)) $off 64k")
done
qemu-io "${cmds[@]}" "$sparse" >/dev/null
echo "== 4 TiB-virtual scattered qcow2 -> qed with -Xmx128m"
DISKMORPH_JVM_OPTS="-Xmx128m" run_timed "in place qcow2->qed 4T -Xmx128m" "$DM" convert --in-place -O qed "$sparse"
qemu-img check -q "$sparse" && echo "  qemu-img check clean"
