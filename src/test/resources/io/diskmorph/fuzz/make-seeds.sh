#!/usr/bin/env bash
# Regenerates the qemu-img seed corpus of the fuzz targets (files named seed-*)
# in ImageFuzzTestInputs/<target>/. Regression inputs found by fuzzing (named
# after what they reproduce) live beside them and are never touched here.
# Seeds are small (4 KiB clusters, 1 MiB disks) so each fuzz run is fast.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/ImageFuzzTestInputs"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

io() { qemu-io -f "$1" "${@:3}" "$2" >/dev/null; }

# QED: empty; data, zero clusters and a cluster at the disk end; a backing file name; need-check set
qemu-img create -q -f qed -o cluster_size=4k,table_size=2 qed-empty.qed 1M
qemu-img create -q -f qed -o cluster_size=4k,table_size=2 qed-data.qed 1M
io qed qed-data.qed -c 'write -P 0x11 0 8k' -c 'write -P 0x22 300k 4k' -c 'write -z 600k 8k' -c 'write -P 0x33 1020k 4k'
qemu-img create -q -f qed -o cluster_size=8k,table_size=2 qed-8k-unaligned-size.qed 1000k
io qed qed-8k-unaligned-size.qed -c 'write -P 0x44 992k 8k' -c 'write -P 0x45 64k 1k'
qemu-img create -q -f raw base.raw 1M
qemu-img create -q -f qed -o cluster_size=4k,table_size=2,backing_file=base.raw,backing_fmt=raw qed-backing.qed 1M
io qed qed-backing.qed -c 'write -P 0x55 4k 2k'
cp qed-data.qed qed-need-check.qed
printf '\x02' | dd of=qed-need-check.qed bs=1 seek=16 conv=notrunc status=none

# raw: data and holes; a raw file whose guest wrote a qcow2 header into it
qemu-img create -q -f raw raw-data.raw 64k
io raw raw-data.raw -c 'write -P 0x5a 512 1k' -c 'write -P 0xa5 40k 4k'
qemu-img create -q -f qcow2 -o cluster_size=4k qcow2-header.qcow2 1M
io qcow2 qcow2-header.qcow2 -c 'write -P 0x66 8k 4k'

put() { # put TARGET FILE...
  mkdir -p "$out/$1"
  local t="$1"; shift
  for f in "$@"; do cp "$f" "$out/$t/seed-${f%.*}"; done
}
qed=(qed-empty.qed qed-data.qed qed-8k-unaligned-size.qed qed-backing.qed qed-need-check.qed)
put probe "${qed[@]}" raw-data.raw qcow2-header.qcow2
put qed "${qed[@]}"
put raw raw-data.raw qcow2-header.qcow2
put planRaw raw-data.raw
put planQed "${qed[@]}"
put convertInPlace "${qed[@]}" raw-data.raw
du -sh "$out"
