#!/usr/bin/env bash
# Builds and runs the examples against the diskmorph installed in the local
# Maven repository (./test.sh runs `mvn install` first), as a user's project
# would use it, and checks what they did with qemu-img. Needs a JDK >= 25
# (JAVA_HOME, or java on the PATH) and python3. Arguments go to every mvn call
# (./test.sh passes its own, e.g. -o or -Dmaven.repo.local=...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mvn_args=("$@")
mvn_q() { mvn -B -q -e -Dstyle.color=never ${mvn_args[@]+"${mvn_args[@]}"} "$@"; }
java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
fail() { echo "examples: $*" >&2; exit 1; }

# the examples name the version they were written for: it must be the one just built
pom_value() { # file, path of the element below <project> (Maven's namespace)
  python3 -c 'import sys, xml.etree.ElementTree as E
n = {"m": "http://maven.apache.org/POM/4.0.0"}
print(E.parse(sys.argv[1]).getroot().find(sys.argv[2], n).text)' "$1" "$2"
}
project=$(pom_value ../pom.xml m:version)
for p in inplace-convert image-report; do
  want=$(pom_value "$p/pom.xml" m:properties/m:diskmorph.version)
  [ "$want" = "$project" ] || fail "$p depends on diskmorph $want, the project is $project"
done

# each example is a module; its module path is its classes and its dependencies' jars, as Maven resolves them
for p in inplace-convert image-report; do
  mvn_q -f "$p/pom.xml" package org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath \
    -Dmdep.outputFile=target/modulepath.txt
done
run() { # project module/class args...
  local p=$1; shift
  exec "$java_bin" --enable-native-access=io.diskmorph,com.github.luben.zstd_jni -p "$p/target/classes:$(cat "$p/target/modulepath.txt")" \
    -m "$@"
}

# in place: a VMDK as qemu-img makes it becomes qcow2 inside its own file
qemu-img create -q -f vmdk "$work/disk.vmdk" 256M
qemu-io -f vmdk -c "write -P 0x5a 0 3M" -c "write -P 0x33 100M 1M" "$work/disk.vmdk" >/dev/null
qemu-img convert -f vmdk -O raw "$work/disk.vmdk" "$work/reference.raw"
if ! out=$(run inplace-convert example.inplace/example.inplace.ConvertInPlace "$work/disk.vmdk" qcow2 \
    2>"$work/bar"); then
  cat "$work/bar" >&2; fail "the in-place example failed"
fi
echo "$out"
grep -q "is qcow2 now" <<<"$out" || fail "the in-place example did not finish"
grep -q "write" "$work/bar" || { cat "$work/bar" >&2; fail "no progress bar on stderr"; }
[ "$(qemu-img info --output=json "$work/disk.vmdk" | grep -c '"format": "qcow2"')" = 1 ] \
  || fail "disk.vmdk is not qcow2 after the example"
qemu-img check -q -f qcow2 "$work/disk.vmdk"
qemu-img compare -q -f qcow2 -F raw "$work/disk.vmdk" "$work/reference.raw"

# stopped by a signal (SIGTERM, as Ctrl-C): the example's shutdown hook cancels and waits, so the image
# is the original or the converted one, never a half-converted file with a journal (whenever it lands)
head -c 256M /dev/urandom > "$work/random.raw"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$work/random.raw" "$work/stream.vmdk"
run inplace-convert example.inplace/example.inplace.ConvertInPlace "$work/stream.vmdk" qcow2 \
  >"$work/sig.out" 2>"$work/sig.err" &
pid=$!
sleep 0.4
kill -TERM "$pid" 2>/dev/null || true
status=0; wait "$pid" || status=$?
[ ! -e "$work/stream.vmdk.dmjournal" ] || fail "a signal left the conversion's journal (exit $status)"
format=$(qemu-img info --output=json "$work/stream.vmdk" | python3 -c 'import json, sys; print(json.load(sys.stdin)["format"])')
qemu-img check -q -f "$format" "$work/stream.vmdk" || fail "the signalled image is not valid $format"
qemu-img compare -q -f "$format" -F raw "$work/stream.vmdk" "$work/random.raw" || fail "the signalled image lost data"
echo "examples: SIGTERM after 0.4 s: exit $status, the image is a valid $format with the same content"
rm -f "$work/random.raw" "$work/stream.vmdk"

# report: a directory with a good image, an overlay, a leaky one and a non-image
mkdir "$work/images"
qemu-img create -q -f qcow2 "$work/images/base.qcow2" 64M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$work/images/overlay.qcow2"
qemu-img create -q -f qcow2 "$work/images/leaky.qcow2" 64M
qemu-io -f qcow2 -c "write -P 1 0 64k" "$work/images/leaky.qcow2" >/dev/null
# drop the L2 entry of guest cluster 0: its data cluster leaks (qemu-img check: 1 leaked cluster)
python3 - "$work/images/leaky.qcow2" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(40); l1 = struct.unpack(">Q", f.read(8))[0]
    f.seek(l1); l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
    f.seek(l2); f.write(bytes(8))
PY
printf 'not a disk' > "$work/images/notes.txt"
report=$(run image-report example.report/example.report.ImageReport "$work/images") || fail "the report example failed"
echo "$report"
REPORT="$report" python3 - <<'PY'
import json, os
r = {e["file"].rsplit("/", 1)[1]: e for e in json.loads(os.environ["REPORT"])}
assert r["base.qcow2"]["format"] == "qcow2" and r["base.qcow2"]["check"] == "clean", r["base.qcow2"]
assert r["overlay.qcow2"]["backing-filename"] == "base.qcow2", r["overlay.qcow2"]
assert r["overlay.qcow2"]["virtual-size"] == 64 << 20, r["overlay.qcow2"]
assert r["notes.txt"]["format"] == "raw" and r["notes.txt"]["check"] == "unsupported", r["notes.txt"]
assert r["leaky.qcow2"]["check"] == "leaks" and r["leaky.qcow2"]["leaks"] == 1, r["leaky.qcow2"]
print("examples: report parsed,", len(r), "entries")
PY
echo "examples: ok"
