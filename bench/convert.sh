#!/usr/bin/env bash
# Issue 4 benchmark: copy conversion, diskmorph convert vs qemu-img convert, same run, same images.
# 4 GiB images with a realistic mix: a 1.5 GiB ext4 filesystem built with mke2fs -d from a few hundred
# MiB of files (with its own holes), 1 GiB of random data in 1-8 MiB pieces with holes and zero blocks
# in between, 256 MiB of written zeros, holes, a little data at the end; the qcow2 source also has
# zero clusters. Pairs: raw -> qcow2, qcow2 -> raw, qed -> qcow2, qcow2 -> qcow2 -c.
# Default options for both tools. Whole-process wall time (JVM start-up included), RUNS runs (default
# 5; RUNS_COMPRESSED for -c, default 3), the two tools alternating (which goes first alternates too):
# min / median / max of each tool, of
# the ratio diskmorph/qemu-img of each alternating pair, and the peak resident memory of each. Before
# every run: the previous output read into the page cache (whichever tool wrote it, so every
# preparation frees the same memory), removed and everything synced, so both tools start with no dirty
# pages and an emptied page cache (root); warm cache: the source and both tools' files are then read
# into the page cache (COLD=1: they are not, everything comes from disk). No memory warming by
# default, as on a user's machine (on this VM a page the guest freed goes back to the host and the
# next touch of it costs a host fault: a process that touches more memory pays more); WARM_MEMORY=1
# warms memory before each run (lib.sh warm_memory), which earlier figures used. SETTLE=N waits N
# seconds after that preparation, before each timed run: the guest's free page reporting hands the
# memory the preparation freed (the dropped page cache, the previous output) back to the host about
# 2 s after it was freed, so without a wait a run meets a race, whose outcome depends on how soon a
# tool starts allocating; after a wait of 5 s every run, of either tool, starts in the state of a VM
# that has been idle a while: every page it newly touches, its output's page cache too, is a host fault.
# raw -> raw the same way, and nbdcopy (libnbd-bin) as a second peer, in runs of its own after it
# (NBDCOPY=0 skips them; why not alternating: see that section).
# PAIRS="raw -> qcow2,qcow2 -> raw" runs only the pairs named. Each diskmorph output is checked by
# qemu-img (compare, check).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS="${RUNS:-5}"
WARM_MEMORY="${WARM_MEMORY:-0}"; export WARM_MEMORY
SETTLE="${SETTLE:-0}"
need mke2fs; need python3
img="$BENCH_DIR/copy-src"
tree="$BENCH_DIR/copy-tree"
out="$BENCH_DIR/copy-out"

if [ ! -f "$img.raw" ]; then
  if [ ! -d "$tree" ]; then
    echo "collecting a file tree for the filesystem"
    mkdir -p "$tree.tmp"
    for d in /usr/include /usr/share/doc /usr/lib/python3* /usr/lib/jvm; do
      [ -d "$d" ] && cp -a "$d" "$tree.tmp/" 2>/dev/null || true
    done
    mv "$tree.tmp" "$tree"
  fi
  echo "creating $img.raw"
  rm -f "$img.raw.tmp" "$img.fs"
  truncate -s 4G "$img.raw.tmp"
  mke2fs -q -t ext4 -d "$tree" -E root_owner=0:0 "$img.fs" 1536M
  dd if="$img.fs" of="$img.raw.tmp" bs=1M conv=notrunc,sparse status=none
  rm -f "$img.fs"
  python3 - "$img.raw.tmp" <<'PY'
import os, random, sys
r = random.Random(42)
f = os.open(sys.argv[1], os.O_WRONLY)
M = 1 << 20
G = 1 << 30
pos = 1536 * M
while pos < 2560 * M:                      # random data in 1-8 MiB pieces, holes between some
    n = r.randint(1, 8) * M
    os.pwrite(f, os.urandom(n), pos)
    pos += n + r.choice([0, 0, 64 * 1024, M, 4 * M])
for i in range(4):                         # 256 MiB of written zeros
    os.pwrite(f, bytes(64 * M), 3 * G + i * 64 * M)
for i in range(200):                       # zero blocks inside the random data
    os.pwrite(f, bytes(r.choice([4096, 16384, 65536, M])), 1536 * M + r.randrange(0, 1024 * M // 4096) * 4096)
os.pwrite(f, os.urandom(2 * M), 4 * G - 3 * M)
os.close(f)
PY
  mv "$img.raw.tmp" "$img.raw"
fi
if [ ! -f "$img.qcow2" ]; then
  qemu-img convert -f raw -O qcow2 "$img.raw" "$img.qcow2.tmp"
  qemu-io -f qcow2 -c "write -z 1800M 8M" -c "write -z 2600M 16M" "$img.qcow2.tmp" >/dev/null
  mv "$img.qcow2.tmp" "$img.qcow2"
fi
if [ ! -f "$img.qed" ]; then
  qemu-img convert -f raw -O qed "$img.raw" "$img.qed.tmp" && mv "$img.qed.tmp" "$img.qed"
fi
echo "source: $(du -h --apparent-size "$img.raw" | cut -f1) raw with $(du -h "$img.raw" | cut -f1) allocated;" \
  "qcow2 $(du -h "$img.qcow2" | cut -f1), qed $(du -h "$img.qed" | cut -f1)"

# the launcher's ahead-of-time cache for 'convert' is made by its first runs: make it before timing
warm="$BENCH_DIR/warm-64m.qcow2"
qemu-img create -q -f qcow2 "$warm" 64M && qemu-io -f qcow2 -c "write -P 7 0 8M" -c "write -z 16M 8M" "$warm" >/dev/null
warm_aot convert -O qcow2 "$warm" "$out.warm"
rm -f "$out.warm" "$warm"

# memory touched (and freed) before each run: twice the source's allocated size plus 2 GiB, more than the
# source's page cache, the output and either tool need
warm_mib=$(( $(du -m "$img.raw" | cut -f1) * 2 + 2048 ))

prepare() { # source
  # the previous run's output is read into the page cache before it goes, so that every preparation
  # frees the same memory whichever tool wrote it: qemu-img leaves its whole output in the page cache,
  # diskmorph (drop-behind, where writes are slow) and nbdcopy leave little of theirs, and memory freed
  # just before a run is memory that run's writes find still backed (see SETTLE): without this a run
  # after diskmorph or nbdcopy met more host faults than a run after qemu-img, whichever tool it was
  if [ -f "$out" ]; then cat "$out" > /dev/null; fi
  rm -f "$out" "$out".part-*
  sync
  # the page cache is emptied first either way: a run that has to evict other files' pages to make
  # room for its output pays for it (seconds of system time here), and which tool meets that depends
  # on the order of runs
  drop_caches
  if [ "${COLD:-0}" != 1 ]; then
    cat "$1" > /dev/null
    # and both tools' own files, as on a machine that uses them
    qemu-img --version >/dev/null; "$DM" --version >/dev/null; cat "$root"/target/*.aot >/dev/null 2>&1 || true
  fi
  if [ "$SETTLE" != 0 ]; then sleep "$SETTLE"; fi
  warm_memory "$warm_mib"
}

# timed LABEL CMD...: wall seconds in $T, CPU seconds (user + system) in $C, system seconds in $S,
# peak resident KiB in $M. Wall time from bash's clock to the millisecond (/usr/bin/time's %e has
# 10 ms steps: 4 % of a 0.25 s copy)
timed() {
  local label="$1"; shift
  local f; f=$(mktemp)
  local t0="$EPOCHREALTIME"
  /usr/bin/time -f "%e %U %S %M" -o "$f" "$@" >/dev/null
  local t1="$EPOCHREALTIME"
  local u; read -r T u S M < "$f"; rm -f "$f"
  T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  C=$(awk -v u="$u" -v s="$S" 'BEGIN { printf "%.2f", u + s }')
  printf '  %-40s %7.2f s wall %7.2f s cpu (%s user, %s sys) %8d KiB max RSS\n' "$label" "$T" "$C" "$u" "$S" "$M"
}

# min / median / max of the numbers given
mmm() { local sorted; sorted=$(printf '%s\n' "$@" | sort -g); echo "$(head -1 <<<"$sorted") / $(printf '%s\n' "$@" | median) / $(tail -1 <<<"$sorted")"; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }

pair() { # label srcfmt dstfmt [flags...]
  local label="$1" from="$2" to="$3"; shift 3
  local src="$img.$from" q=() d=() qc=() dc=() qs=() ds=() qr=() dr=() rt=()
  if [ -n "${PAIRS:-}" ] && [[ ",$PAIRS," != *",$label,"* ]]; then return 0; fi
  echo "== $label"
  for r in $(seq "$RUNS"); do
    # which tool goes first alternates: a run's cost depends on what the run before it left (see the
    # raw -> raw note below), so neither tool always follows the other
    local first=qemu second=diskmorph qt dt
    if [ $((r % 2)) = 0 ]; then first=diskmorph second=qemu; fi
    for tool in "$first" "$second"; do
      prepare "$src"
      if [ "$tool" = qemu ]; then
        timed "qemu-img convert $label" qemu-img convert -f "$from" -O "$to" "$@" "$src" "$out"
        q+=("$T"); qc+=("$C"); qs+=("$S"); qr+=("$M"); qt="$T"
      else
        timed "diskmorph convert $label" "$DM" convert -f "$from" -O "$to" "$@" "$src" "$out"
        d+=("$T"); dc+=("$C"); ds+=("$S"); dr+=("$M"); dt="$T"
      fi
    done
    rt+=("$(ratio "$dt" "$qt")")
  done
  # with an even number of runs the last was qemu-img's: the output checked is diskmorph's
  if [ $((RUNS % 2)) = 0 ]; then rm -f "$out"; "$DM" convert -f "$from" -O "$to" "$@" "$src" "$out" >/dev/null; fi
  qemu-img compare -q -f "$from" -F "$to" "$src" "$out" || { echo "  MISMATCH: diskmorph output differs"; exit 1; }
  [ "$to" = raw ] || qemu-img check -q -f "$to" "$out" || { echo "  qemu-img check failed"; exit 1; }
  local qm dm qcm dcm
  qm=$(printf '%s\n' "${q[@]}" | median); dm=$(printf '%s\n' "${d[@]}" | median)
  qcm=$(printf '%s\n' "${qc[@]}" | median); dcm=$(printf '%s\n' "${dc[@]}" | median)
  local qmin dmin
  qmin=$(printf '%s\n' "${q[@]}" | sort -g | head -1); dmin=$(printf '%s\n' "${d[@]}" | sort -g | head -1)
  echo "RESULT $label: median qemu-img ${qm}s diskmorph ${dm}s ratio(diskmorph/qemu) $(ratio "$dm" "$qm");" \
    "best qemu-img ${qmin}s diskmorph ${dmin}s ratio $(ratio "$dmin" "$qmin");" \
    "cpu qemu-img ${qcm}s diskmorph ${dcm}s"
  echo "RESULT $label min/median/max: qemu-img $(mmm "${q[@]}") s, diskmorph $(mmm "${d[@]}") s," \
    "ratio of each pair $(mmm "${rt[@]}"), slowest diskmorph / slowest qemu-img" \
    "$(ratio "$(maxof "${d[@]}")" "$(maxof "${q[@]}")"); system time qemu-img $(mmm "${qs[@]}") s," \
    "diskmorph $(mmm "${ds[@]}") s; peak RSS qemu-img $(( $(maxof "${qr[@]}") / 1024 )) MiB," \
    "diskmorph $(( $(maxof "${dr[@]}") / 1024 )) MiB"
  rm -f "$out"
}

startup=$( { /usr/bin/time -f "%e" "$DM" --version >/dev/null; } 2>&1 )
echo "JVM start-up (diskmorph --version): ${startup}s; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg);" \
  "WARM_MEMORY=$WARM_MEMORY SETTLE=$SETTLE"
pair "raw -> qcow2" raw qcow2
pair "qcow2 -> raw" qcow2 raw
pair "qed -> qcow2" qed qcow2
RUNS="${RUNS_COMPRESSED:-3}" pair "qcow2 -> qcow2 -c" qcow2 qcow2 -c

# raw -> raw, qemu-img and diskmorph alternating like the pairs above, then a second peer: nbdcopy
# (libnbd), which copies sparsely with several requests in flight like qemu-img, in runs of its own.
# nbdcopy writes its output back and drops it from the page cache as it goes (sync_file_range), so
# the pages it used are free while it runs; this VM hands free pages back to its host after a few
# seconds (free page reporting), and the run right after an nbdcopy run meets them: 0.4-0.5 s more
# system time, for qemu-img and diskmorph alike. When the three alternated in a fixed order,
# diskmorph always followed nbdcopy, which made its raw -> raw median 2.7x qemu-img's.
if { [ -z "${PAIRS:-}" ] || [[ ",$PAIRS," == *",raw -> raw,"* ]]; }; then
  PAIRS="raw -> raw" pair "raw -> raw" raw raw
  if [ "${NBDCOPY:-1}" = 1 ] && command -v nbdcopy >/dev/null; then
    echo "== raw -> raw, nbdcopy"
    n=(); ns=(); nr=()
    for r in $(seq "$RUNS"); do
      prepare "$img.raw"; timed "nbdcopy raw -> raw" nbdcopy "$img.raw" "$out"; n+=("$T"); ns+=("$S"); nr+=("$M")
    done
    echo "RESULT raw -> raw nbdcopy min/median/max: $(mmm "${n[@]}") s, system time $(mmm "${ns[@]}") s," \
      "peak RSS $(( $(maxof "${nr[@]}") / 1024 )) MiB (runs of its own, after the pair above)"
    rm -f "$out"
  elif [ "${NBDCOPY:-1}" = 1 ]; then
    echo "== raw -> raw, nbdcopy: not installed (Debian's libnbd-bin), not measured"
  fi
fi
