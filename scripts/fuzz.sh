#!/usr/bin/env bash
# Longer fuzzing runs than the test command's few seconds (docs/fuzzing.md). Builds the fuzz
# targets (scripts/build-fuzz.sh), then runs TARGET (or every target in turn) for SECONDS
# each, starting from its corpus in fuzz/corpus/TARGET. New inputs go to a scratch dir
# (printed; merge the useful ones into the repo's corpus with -merge=1, docs/fuzzing.md),
# crashes to build-fuzz/artifacts/TARGET/.
#   scripts/fuzz.sh [TARGET|all] [SECONDS]     default: all, 300
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_WORK_DIR (default a new temp dir),
# FUZZ_ARGS (more libFuzzer flags, e.g. "-jobs=2 -workers=2").
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-all}
seconds=${2:-300}
build=${FUZZ_BUILD_DIR:-build-fuzz}
work=${FUZZ_WORK_DIR:-$(mktemp -d /tmp/ftd-fuzz.XXXXXX)}

scripts/build-fuzz.sh "$build"

if [ "$target" = all ]; then
  targets=$(sed -n 's/^  \([a-z_]*\) *# .*/\1/p' fuzz/CMakeLists.txt)
else
  targets=$target
fi

failed=()
for t in $targets; do
  bin=$build/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz.sh: no target '$t' ($bin)" >&2; exit 2; }
  mkdir -p "$work/$t" "$build/artifacts/$t"
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536
        -error_exitcode=1 -timeout_exitcode=1
        -artifact_prefix="$build/artifacts/$t/" -print_final_stats=1)
  [ -f "fuzz/dict/$t.dict" ] && args+=(-dict="fuzz/dict/$t.dict")
  echo "== $t: ${seconds}s, new inputs in $work/$t"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  if ! "$bin" "${args[@]}" ${FUZZ_ARGS:-} "$work/$t" "fuzz/corpus/$t"; then
    failed+=("$t")
  fi
done

echo "new inputs: $work (merge: docs/fuzzing.md)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "findings in: ${failed[*]} (inputs in $build/artifacts/)" >&2
  exit 1
fi
