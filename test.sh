#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need (qemu-utils for the
# qemu-img oracle, libvmdk-utils for vmdkinfo, a second VMDK reader,
# libvhdi-utils for vhdiinfo, a second VHDX reader,
# e2fsprogs for filesystem content, gcc for the JNI shim the build makes and
# the tests expect, bsdutils for `script`, which gives the progress bar test a
# terminal, librsvg2-bin for rsvg-convert, which renders `layout`'s SVG,
# python3, which reads the JSON the examples/ print, util-linux-extra for fincore, which shows what of
# a copy's target the page cache holds) when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

need=()
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v qemu-nbd >/dev/null 2>&1 || need+=(qemu-utils)
command -v vmdkinfo >/dev/null 2>&1 || need+=(libvmdk-utils)
command -v vhdiinfo >/dev/null 2>&1 || need+=(libvhdi-utils)
command -v mke2fs >/dev/null 2>&1 || need+=(e2fsprogs)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v rsvg-convert >/dev/null 2>&1 || need+=(librsvg2-bin)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v fincore >/dev/null 2>&1 || need+=(util-linux-extra)
[ -x /usr/bin/cc ] || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: missing ${need[*]}; run as root or install them" >&2; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

jdk=""
for c in "${JAVA_HOME:-}" /usr/lib/jvm/*25* /usr/lib/jvm/*; do
  [ -n "$c" ] && [ -x "$c/bin/javac" ] || continue
  v=$("$c/bin/java" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}' | cut -d. -f1)
  if [ "${v:-0}" -ge 25 ] 2>/dev/null; then jdk="$c"; break; fi
done
[ -n "$jdk" ] || { echo "test.sh: no JDK 25 or newer found" >&2; exit 1; }
export JAVA_HOME="$jdk"

qemu-img --version | head -1
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
# install: the examples/ projects depend on the library by its Maven coordinates, as a user's would
mvn -B -q -e -Dstyle.color=never install "$@"
examples/run.sh "$@"

# Bounded fuzzing: every Jazzer target in io.diskmorph.fuzz for DISKMORPH_FUZZ_SECONDS each
# (default 5; 0 skips). mvn verify above already replays every fuzz corpus as regression tests.
fuzz_seconds="${DISKMORPH_FUZZ_SECONDS:-5}"
if [ "$fuzz_seconds" -gt 0 ]; then
  bench/fuzz.sh "$fuzz_seconds"
fi
