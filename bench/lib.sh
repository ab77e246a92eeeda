# Shared helpers for the benchmark scripts (sourced).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
DM="$root/diskmorph"
BENCH_DIR="${BENCH_DIR:-/var/tmp/diskmorph-bench}"
mkdir -p "$BENCH_DIR"

need() { command -v "$1" >/dev/null || { echo "bench: $1 is required" >&2; exit 1; }; }
need qemu-img; need qemu-io; need /usr/bin/time

# Drop the page cache (root only); cold-cache runs are what users see first.
drop_caches() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; fi
}

# warm_memory MIB: touch MIB of memory (a file in /dev/shm) and free it again. On a virtual machine
# whose balloon reports free pages to the host (Firecracker here: page_reporting with min_free_ms=0),
# memory the guest freed is given back at once, and the first touch of such a page costs the host a
# fault: ~2 ms per MiB, 6-7x the cost of the write itself (1 GiB buffered write: 2.0-2.4 s of system
# time vs 0.32 s right after this warm-up). Which tool meets how many such pages depends on the
# timing of the reporting thread, so timed runs start right after this, with memory the guest has
# just used, as on a machine without a balloon. WARM_MEMORY=0 turns it off.
warm_memory() {
  [ "${WARM_MEMORY:-1}" = 1 ] && [ -d /dev/shm ] && [ -w /dev/shm ] || return 0
  local f; f="$(mktemp /dev/shm/diskmorph-bench-warm.XXXXXX)"
  dd if=/dev/zero of="$f" bs=1M count="$1" status=none 2>/dev/null || true
  rm -f "$f"
}

# run_timed LABEL CMD... : runs CMD, prints "LABEL seconds maxrss_kib", returns seconds in $T and RSS in $RSS
run_timed() {
  local label="$1"; shift
  local out; out=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$out" "$@" >/dev/null
  read -r T RSS < "$out"; rm -f "$out"
  printf '  %-44s %8.2f s  %8d KiB max RSS\n' "$label" "$T" "$RSS"
}

# median of numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }

# warm_aot CMD ARGS...: run a diskmorph command and wait until the launcher has its ahead-of-time
# cache (the first run starts a training run in the background that writes it), so timed runs start
# like a user's everyday runs do
warm_aot() {
  local name="$1"; name="${name//[^a-z-]/_}"
  "$DM" "$@" >/dev/null 2>&1 || true
  for _ in $(seq 120); do
    [ -f "$root/target/diskmorph-$name.aot" ] && return 0
    sleep 0.5
  done
  echo "bench: no ahead-of-time cache for '$1' after 60 s" >&2
}
"$DM" --version >/dev/null # builds the jar if needed
