#!/usr/bin/env bash
# Regenerates the qemu-img seed corpus of the fuzz targets (files named seed-*)
# in ImageFuzzTestInputs/<target>/. Regression inputs found by fuzzing (named
# after what they reproduce) live beside them and are never touched here.
# Seeds are small (4 KiB clusters, 1 MiB disks) so each fuzz run is fast. Needs qemu-img 7.2.
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

# qcow2 (4 KiB clusters): data, zero and compressed clusters; v2; extended L2; zstd; a snapshot;
# a backing file name; lazy refcounts left dirty; an external data file name
q() { qemu-img create -q -f qcow2 -o "cluster_size=4k,$1" "$2" 1M; }
q compat=1.1 qcow2-data.qcow2
io qcow2 qcow2-data.qcow2 -c 'write -P 0x11 0 8k' -c 'write -P 0x22 300k 4k' -c 'write -z 600k 8k' -c 'write -P 0x33 1020k 4k'
q compat=0.10 qcow2-v2.qcow2
io qcow2 qcow2-v2.qcow2 -c 'write -P 0x12 4k 8k' -c 'write -z 64k 4k'
q extended_l2=on,cluster_size=16k qcow2-extl2.qcow2
io qcow2 qcow2-extl2.qcow2 -c 'write -P 0x13 2k 1k' -c 'write -z 40k 2k'
qemu-img create -q -f raw src.raw 256k
io raw src.raw -c 'write -P 0x14 0 64k' -c 'write -P 0x15 128k 8k'
qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k src.raw qcow2-compressed.qcow2
qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k,compression_type=zstd src.raw qcow2-zstd.qcow2
cp qcow2-data.qcow2 qcow2-snapshot.qcow2
qemu-img snapshot -c snap1 qcow2-snapshot.qcow2
io qcow2 qcow2-snapshot.qcow2 -c 'write -P 0x16 0 4k'
q backing_file=base.raw,backing_fmt=raw qcow2-backing.qcow2
io qcow2 qcow2-backing.qcow2 -c 'write -P 0x17 4k 2k'
q lazy_refcounts=on qcow2-lazy.qcow2
(qemu-io -f qcow2 -c 'write -P 0x18 0 4k' -c 'sigraise 9' qcow2-lazy.qcow2 >/dev/null 2>&1 && exit 1; exit 0) 2>/dev/null  # killed: dirty bit stays set
q data_file=data.raw qcow2-datafile.qcow2

# VMDK as an in-place source (qemu's 64 KiB grains, written whole: 128-192 KiB each): a monolithicSparse with
# data, one with zeroed grains (a zeroed grain over data leaves a dead grain), a streamOptimized
qemu-img create -q -f vmdk vmdk-sparse.vmdk 1M
io vmdk vmdk-sparse.vmdk -c 'write -P 0x11 0 4k' -c 'write -P 0x22 600k 1k'
qemu-img create -q -f vmdk -o zeroed_grain=on vmdk-zeroed.vmdk 1M
io vmdk vmdk-zeroed.vmdk -c 'write -P 0x11 0 4k' -c 'write -P 0x22 600k 1k' -c 'write -z 0 64k' -c 'write -z 900k 64k'
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw vmdk-stream.vmdk

# VHDX (1 MiB blocks, the smallest): dynamic with data and zero blocks, fixed, a bigger log, and one whose log
# is active (qemu killed after writes leaves log entries; the headers then name the entries' log GUID, as a
# Hyper-V host that lost power leaves them). Stored as sparse inputs (SparseInput: the non-zero sectors).
qemu-img create -q -f vhdx -o block_size=1M vhdx-dynamic.vhdx 3M
io vhdx vhdx-dynamic.vhdx -c 'write -P 0x11 0 4k' -c 'write -P 0x22 1M 1k' -c 'write -z 2M 64k'
qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M,block_state_zero=off vhdx-fixed.vhdx 2M
io vhdx vhdx-fixed.vhdx -c 'write -P 0x33 4k 4k'
qemu-img create -q -f vhdx -o block_size=1M,block_state_zero=off,log_size=2M vhdx-log2m.vhdx 1M
io vhdx vhdx-log2m.vhdx -c 'write -P 0x44 512 512'
qemu-img create -q -f vhdx -o block_size=1M vhdx-active-log.vhdx 3M
(qemu-io -f vhdx -c 'write -P 0x55 0 4k' -c 'write -P 0x66 2M 4k' -c 'sigraise 9' vhdx-active-log.vhdx \
  >/dev/null 2>&1 && exit 1; exit 0) 2>/dev/null
python3 - vhdx-active-log.vhdx <<'PY'
import struct, sys
def crc32c(data):
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    crc = 0xffffffff
    for b in data:
        crc = t[(crc ^ b) & 0xff] ^ (crc >> 8)
    return crc ^ 0xffffffff
d = bytearray(open(sys.argv[1], 'rb').read())
log = struct.unpack_from('<Q', d, 64 * 1024 + 72)[0]
assert d[log:log + 4] == b'loge', 'qemu left no log entry'
for h in (64 * 1024, 128 * 1024):
    d[h + 48:h + 64] = d[log + 32:log + 48]
    struct.pack_into('<I', d, h + 4, 0)
    struct.pack_into('<I', d, h + 4, crc32c(bytes(d[h:h + 4096])))
open(sys.argv[1], 'wb').write(d)
PY
sparse() { # sparse FILE: the file as SparseInput records of its non-zero 512-byte sectors, in FILE.sparse
  python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
out = bytearray()
s, n = 0, len(d)
while s < n:
    if not any(d[s:s + 512]):
        s += 512
        continue
    e = s
    while e < n and e - s < 65024 and any(d[e:e + 512]):
        e += 512
    out += struct.pack('<IH', s, e - s) + d[s:e]
    s = e
out += struct.pack('<IH', n - 1, 1) + d[n - 1:n]  # the file's length
open(sys.argv[1] + '.sparse', 'wb').write(out)
PY
}
vhdx=(vhdx-dynamic.vhdx vhdx-fixed.vhdx vhdx-log2m.vhdx vhdx-active-log.vhdx)
for f in "${vhdx[@]}"; do sparse "$f"; done
# VDI (1 MiB blocks, so a block with data makes a 1 MiB seed): an empty dynamic image; data in a partial last
# block and a written-zero block; a discarded entry (patched: qemu never writes one); a small static image
qemu-img create -q -f vdi vdi-empty.vdi 4M
qemu-img create -q -f vdi vdi-data.vdi 2000k
io vdi vdi-data.vdi -c 'write -P 0x11 1536k 4k' -c 'write -z 0 4k'
cp vdi-data.vdi vdi-discarded.vdi
printf '\xfe\xff\xff\xff' | dd of=vdi-discarded.vdi bs=1 seek=512 conv=notrunc status=none
qemu-img create -q -f vdi -o static=on vdi-static.vdi 1M
io vdi vdi-static.vdi -c 'write -P 0x22 4k 2k'

# Parallels: empty; data in clusters out of guest order and at the disk end; 64 KiB clusters; the old magic
# (entries count sectors: these point into the BAT, which a reader refuses); not closed correctly (inuse)
qemu-img create -q -f parallels -o cluster_size=4k parallels-empty.parallels 1M
qemu-img create -q -f parallels -o cluster_size=4k parallels-data.parallels 1M
io parallels parallels-data.parallels -c 'write -P 0x11 300k 6k' -c 'write -P 0x22 0 4k' -c 'write -P 0x33 1020k 4k'
qemu-img create -q -f parallels -o cluster_size=64k parallels-64k.parallels 1000k
io parallels parallels-64k.parallels -c 'write -P 0x44 960k 40k' -c 'write -P 0x45 64k 1k'
cp parallels-data.parallels parallels-old-magic.parallels
printf 'WithoutFreeSpace' | dd of=parallels-old-magic.parallels bs=1 conv=notrunc status=none
cp parallels-data.parallels parallels-inuse.parallels
printf 'Ynot' | dd of=parallels-inuse.parallels bs=1 seek=44 conv=notrunc status=none
# VHD: qemu makes 2 MiB blocks (a block with data would make a 2 MiB seed), so besides an empty qemu image the
# dynamic seed is re-laid with 4 KiB blocks (qemu reads any power of two) and written by qemu-io; a small fixed one
qemu-img create -q -f vpc vpc-empty.vhd 1M
cp vpc-empty.vhd vpc-4k.vhd
python3 - vpc-4k.vhd <<'PY'
import struct, sys
p = sys.argv[1]
d = bytearray(open(p, 'rb').read())
footer = d[:512]
cyl, heads, spt = struct.unpack('>HBB', footer[56:60])
entries = -(-cyl * heads * spt * 512 // 4096)
bat = (entries * 4 + 511) // 512 * 512
h = bytearray(d[512:1536])
struct.pack_into('>II', h, 28, entries, 4096)
struct.pack_into('>I', h, 36, 0)
struct.pack_into('>I', h, 36, ~sum(h) & 0xffffffff)
out = footer + h + b'\xff' * bat + footer
open(p, 'wb').write(out)
PY
io vpc vpc-4k.vhd -c 'write -P 0x11 0 8k' -c 'write -P 0x22 300k 4k' -c 'write -z 600k 4k' -c 'write -P 0x33 1000k 4k'
qemu-img create -q -f vpc -o subformat=fixed vpc-fixed.vhd 64k
io vpc vpc-fixed.vhd -c 'write -P 0x44 0 4k'

put() { # put TARGET FILE...
  mkdir -p "$out/$1"
  local t="$1"; shift
  for f in "$@"; do cp "$f" "$out/$t/seed-${f%.*}"; done
}
qed=(qed-empty.qed qed-data.qed qed-8k-unaligned-size.qed qed-backing.qed qed-need-check.qed)
qcow2=(qcow2-header.qcow2 qcow2-data.qcow2 qcow2-v2.qcow2 qcow2-extl2.qcow2 qcow2-compressed.qcow2 qcow2-zstd.qcow2
  qcow2-snapshot.qcow2 qcow2-backing.qcow2 qcow2-lazy.qcow2 qcow2-datafile.qcow2)
put probe "${qed[@]}" raw-data.raw "${qcow2[@]}"
put qcow2 "${qcow2[@]}"
put planQcow2 "${qcow2[@]}"
put qed "${qed[@]}"
put raw raw-data.raw qcow2-header.qcow2
put planRaw raw-data.raw
put planQed "${qed[@]}"
vmdk=(vmdk-sparse.vmdk vmdk-zeroed.vmdk vmdk-stream.vmdk)
put vmdkWrite "${vmdk[@]}"
put planVmdk "${vmdk[@]}"
put convertInPlace "${qed[@]}" raw-data.raw qcow2-data.qcow2 qcow2-compressed.qcow2 qcow2-extl2.qcow2 "${vmdk[@]}"
put convertInPlaceQcow2 "${qed[@]}" raw-data.raw qcow2-data.qcow2 qcow2-compressed.qcow2 qcow2-extl2.qcow2 \
  "${vmdk[@]}"
put convertInPlaceVmdk "${qed[@]}" raw-data.raw qcow2-data.qcow2 qcow2-compressed.qcow2 qcow2-extl2.qcow2 \
  "${vmdk[@]}"
put convertInPlaceToVhdx "${qed[@]}" raw-data.raw qcow2-data.qcow2 qcow2-compressed.qcow2 qcow2-extl2.qcow2 \
  "${vmdk[@]}"
putSparse() { # putSparse TARGET FILE...: the .sparse form, named like the file
  mkdir -p "$out/$1"
  local t="$1"; shift
  for f in "$@"; do cp "$f.sparse" "$out/$t/seed-${f%.*}"; done
}
putSparse vhdx "${vhdx[@]}"
putSparse convertInPlaceVhdx vhdx-dynamic.vhdx vhdx-fixed.vhdx vhdx-log2m.vhdx
vdi=(vdi-empty.vdi vdi-data.vdi vdi-discarded.vdi vdi-static.vdi)
put vdi "${vdi[@]}"
put planVdi "${qcow2[@]}"
put probe "${vdi[@]}"
put convertInPlace vdi-data.vdi vdi-static.vdi
put convertInPlaceQcow2 vdi-data.vdi vdi-static.vdi
parallels=(parallels-empty.parallels parallels-data.parallels parallels-64k.parallels parallels-old-magic.parallels
  parallels-inuse.parallels)
put parallels "${parallels[@]}"
put planParallels "${qcow2[@]}"
put probe "${parallels[@]}"
put convertInPlace parallels-data.parallels parallels-64k.parallels
put convertInPlaceQcow2 parallels-data.parallels parallels-64k.parallels
put convertInPlaceRaw parallels-data.parallels parallels-64k.parallels
# in place to raw: the sources it moves (qcow2, QED, monolithicSparse VMDK) and those it refuses
put convertInPlaceRaw "${qed[@]}" raw-data.raw qcow2-data.qcow2 qcow2-compressed.qcow2 qcow2-extl2.qcow2 \
  "${vmdk[@]}" vdi-data.vdi
putSparse vhdxWrite "${vhdx[@]}"
# qcow v1: empty; data (a partial write, the disk's last cluster); compressed clusters (qemu-img convert -c
# exits 1 after a complete image); a backing file name (512-byte clusters, 32 KiB L2 tables)
qemu-img create -q -f qcow qcow-empty.qcow 1M
qemu-img create -q -f qcow qcow-data.qcow 1M
io qcow qcow-data.qcow -c 'write -P 0x11 0 8k' -c 'write -P 0x22 300k 1k' -c 'write -P 0x33 1020k 4k'
qemu-img convert -c -f qcow -O qcow qcow-data.qcow qcow-compressed.qcow || true
qemu-img create -q -f qcow -o backing_file=base.raw,backing_fmt=raw qcow-backing.qcow 1M
io qcow qcow-backing.qcow -c 'write -P 0x55 4k 2k'
qcow=(qcow-empty.qcow qcow-data.qcow qcow-compressed.qcow qcow-backing.qcow)
put qcow "${qcow[@]}"
put planQcow "${qcow[@]}"
put probe "${qcow[@]}"
put convertInPlace "${qcow[@]}"
put convertInPlaceQcow2 "${qcow[@]}"
put convertInPlaceRaw qcow-data.qcow qcow-compressed.qcow
vpc=(vpc-empty.vhd vpc-4k.vhd vpc-fixed.vhd)
put vpc "${vpc[@]}"
put probe "${vpc[@]}"
put convertInPlace vpc-4k.vhd
put convertInPlaceQcow2 vpc-4k.vhd
put convertInPlaceRaw vpc-4k.vhd
du -sh "$out"
