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

# warm_aot CMD ARGS...: run a diskmorph command until the launcher has its ahead-of-time cache
# (the first run records, the next assembles it in the background), so timed runs start like a
# user's everyday runs do
warm_aot() {
  local name; name="$(printf '%s' "$1" | tr -c 'a-z-' '_')"
  for _ in 1 2 3 4 5 6; do
    [ -f "$root/target/diskmorph-$name.aot" ] && return 0
    "$DM" "$@" >/dev/null 2>&1 || true
    sleep 3
  done
}
"$DM" --version >/dev/null # builds the jar if needed
