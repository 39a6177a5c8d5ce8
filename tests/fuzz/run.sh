#!/usr/bin/env bash
# Runs each libFuzzer target of a KEEL_FUZZ build for SECONDS and prints one line per target: executions,
# corpus size, findings. Usage: tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]   (default: every target)
#
# Per target, under BUILD_DIR/fuzz-out/<target>/: corpus/ (what the run added to the seeds; reused by the next
# run), crashes/ (this run's reproducers: crash-*, leak-*, timeout-*, oom-*; the previous run's move to
# crashes.prev/), log.txt (the fuzzer's output).
# Reproduce a finding: BUILD_DIR/fuzz/fuzz_<target> BUILD_DIR/fuzz-out/<target>/crashes/crash-<sha1>
# (or the replay build: build/fuzz/fuzz_replay_<target> FILE). Once fixed, copy the reproducer into
# tests/fuzz/corpus/<target>/ so `make test` replays it for good.
set -u
build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$here"/corpus/*/; do targets+=("$(basename "$f")"); done
fi

# -timeout: an input that takes longer than 10 s is a hang; -rss_limit_mb: more than 2 GB for one input is a leak
# or an unbounded allocation. Both are reported as findings (timeout-*, oom-*).
fuzz_args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)
status=0
summary=()
for t in "${targets[@]}"; do
  exe=$build/fuzz/fuzz_$t
  out=$build/fuzz-out/$t
  # A run reports only its own findings; the previous run's reproducers move to crashes.prev/.
  if [ -n "$(ls -A "$out/crashes" 2>/dev/null)" ]; then rm -rf "$out/crashes.prev" && mv "$out/crashes" "$out/crashes.prev"; fi
  mkdir -p "$out/corpus" "$out/crashes"
  if [ ! -x "$exe" ]; then
    echo "fuzz: $exe missing (cmake --build $build --target keel_fuzzers)"
    exit 2
  fi
  echo "fuzz: $t for ${seconds}s (log: $out/log.txt)"
  "$exe" "${fuzz_args[@]}" -artifact_prefix="$out/crashes/" "$out/corpus" "$here/corpus/$t" >"$out/log.txt" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/log.txt" | grep -o '[0-9]*$' | tail -1)
  findings=$(find "$out/crashes" -type f | wc -l)
  corpus=$(find "$out/corpus" -type f | wc -l)
  line=$(printf '%-20s %12s execs  %6s corpus  %3s findings  rc=%s' "$t" "${execs:-?}" "$corpus" "$findings" "$rc")
  summary+=("$line")
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
    status=1
    grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer|LeakSanitizer)|runtime error|fuzz check failed' "$out/log.txt"
    ls "$out/crashes"
  fi
done
echo
echo "fuzz summary (${seconds}s each; reproducers under $build/fuzz-out/<target>/crashes/):"
printf '  %s\n' "${summary[@]}"
exit $status
