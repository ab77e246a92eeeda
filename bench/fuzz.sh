#!/usr/bin/env bash
# Fuzzes each Jazzer target of io.diskmorph.fuzz.ImageFuzzTest for a bounded
# time and prints one line per target: executions, seconds, result.
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 60 s, all targets)
# A finding fails the run; Jazzer saves the input as crash-*/timeout-* in
# src/test/resources/io/diskmorph/fuzz/ImageFuzzTestInputs/<target>/, where it
# is replayed by every `mvn test` until fixed (then rename it after what it
# reproduces). The generated corpus is kept in .cifuzz-corpus/ between runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-60}"; shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(grep -B3 -h 'void [a-zA-Z0-9]*(' src/test/java/io/diskmorph/fuzz/ImageFuzzTest.java \
    | awk '/@FuzzTest/ {f=1; next} f && /void/ {sub(/.*void /, ""); sub(/\(.*/, ""); print; f=0}'))
fi
mvn -q -B -DskipTests test-compile
logs="target/fuzz-logs"; mkdir -p "$logs"
status=0
passed=0; failed=0
printf '%-16s %12s %8s  %s\n' target executions seconds result
for t in "${targets[@]}"; do
  log="$logs/$t.log"
  # JUnit's own timeout would bound the whole fuzzing session; disabled here, Jazzer turns the
  # @Timeout value into libFuzzer's per-input -timeout instead.
  if JAZZER_FUZZ=1 JAZZER_INSTRUMENT='io.diskmorph.**' JAZZER_MAX_DURATION="${secs}s" \
      mvn -B surefire:test -Dtest="ImageFuzzTest#$t" -Djunit.jupiter.execution.timeout.mode=disabled \
      -Dsurefire.failIfNoSpecifiedTests=false >"$log" 2>&1; then
    result=ok; passed=$((passed + 1))
  else
    result="FINDING (see $log)"; status=1; failed=$((failed + 1))
  fi
  runs=$(grep -ao 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $2, $5}')
  printf '%-16s %12s %8s  %s\n' "$t" "${runs% *}" "${runs#* }" "$result"
done
echo "fuzz: $passed passed, $failed failed"
exit $status
