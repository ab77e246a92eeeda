#!/usr/bin/env bash
# Builds and runs the examples against the diskmorph installed in the local
# Maven repository (./test.sh runs `mvn install` first), as a user's project
# would use it, and checks what they did with qemu-img. Needs JAVA_HOME >= 25.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mvn_q() { mvn -B -q -e -Dstyle.color=never "$@"; }

# the examples name the version they were written for: it must be the one just built
project=$(sed -n 's|^  <version>\(.*\)</version>|\1|p' ../pom.xml | head -1)
for p in inplace-convert image-report; do
  want=$(sed -n 's|.*<diskmorph.version>\(.*\)</diskmorph.version>.*|\1|p' "$p/pom.xml")
  [ "$want" = "$project" ] || { echo "examples: $p depends on diskmorph $want, the project is $project" >&2; exit 1; }
done

# each example is a module; its module path is its classes and its dependencies' jars, as Maven resolves them
for p in inplace-convert image-report; do
  mvn_q -f "$p/pom.xml" package dependency:build-classpath -Dmdep.outputFile=target/modulepath.txt
done
run() { # project module/class args...
  local p=$1; shift
  "$JAVA_HOME/bin/java" --enable-native-access=io.diskmorph -p "$p/target/classes:$(cat "$p/target/modulepath.txt")" \
    -m "$@"
}

# in place: a VMDK as qemu-img makes it becomes qcow2 inside its own file
qemu-img create -q -f vmdk "$work/disk.vmdk" 256M
qemu-io -f vmdk -c "write -P 0x5a 0 3M" -c "write -P 0x33 100M 1M" "$work/disk.vmdk" >/dev/null
qemu-img convert -f vmdk -O raw "$work/disk.vmdk" "$work/reference.raw"
out=$(run inplace-convert example.inplace/example.inplace.ConvertInPlace "$work/disk.vmdk" qcow2 2>"$work/bar")
echo "$out"
grep -q "is qcow2 now" <<<"$out" || { echo "examples: in-place example did not finish" >&2; exit 1; }
grep -q "write" "$work/bar" || { echo "examples: no progress bar on stderr" >&2; cat "$work/bar" >&2; exit 1; }
[ "$(qemu-img info --output=json "$work/disk.vmdk" | grep -c '"format": "qcow2"')" = 1 ] \
  || { echo "examples: disk.vmdk is not qcow2 after the example" >&2; exit 1; }
qemu-img check -q -f qcow2 "$work/disk.vmdk"
qemu-img compare -q -f qcow2 -F raw "$work/disk.vmdk" "$work/reference.raw"

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
report=$(run image-report example.report/example.report.ImageReport "$work/images")
echo "$report"
python3 - <<PY
import json, sys
r = {e["file"].rsplit("/", 1)[1]: e for e in json.loads('''$report''')}
assert r["base.qcow2"]["format"] == "qcow2" and r["base.qcow2"]["check"] == "clean", r["base.qcow2"]
assert r["overlay.qcow2"]["backing-filename"] == "base.qcow2", r["overlay.qcow2"]
assert r["overlay.qcow2"]["virtual-size"] == 64 << 20, r["overlay.qcow2"]
assert r["notes.txt"]["format"] == "raw" and r["notes.txt"]["check"] == "unsupported", r["notes.txt"]
assert r["leaky.qcow2"]["check"] == "leaks" and r["leaky.qcow2"]["leaks"] == 1, r["leaky.qcow2"]
print("examples: report parsed,", len(r), "entries")
PY
echo "examples: ok"
