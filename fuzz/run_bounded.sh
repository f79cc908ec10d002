#!/usr/bin/env bash
# One fuzz target's bounded run, as a ctest test: every input of its corpus, then new inputs
# for FTD_FUZZ_SECONDS (default 4). New inputs go to a scratch dir, never into the repo's
# corpus; a crash leaves its input in ARTIFACT_DIR (docs/fuzzing.md: turning it into a
# regression test).
#   run_bounded.sh FUZZ_BINARY CORPUS_DIR ARTIFACT_DIR
# Exit 77 (skipped) when the binary was not built (scripts/build-fuzz.sh builds it); under
# CI=true that is a failure: a skipped check in CI is one that cannot fail.
set -euo pipefail
bin=$1 corpus=$2 artifacts=$3
seconds=${FTD_FUZZ_SECONDS:-4}
name=$(basename "$bin")

if [ ! -x "$bin" ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL (CI=true, may not skip): no $bin; scripts/build-fuzz.sh builds it"
    exit 1
  fi
  echo "SKIP: no $bin; scripts/build-fuzz.sh builds it"
  exit 77
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$artifacts"
args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536
      -error_exitcode=1 -timeout_exitcode=1
      -artifact_prefix="$artifacts/" -print_final_stats=1)
dict=$(dirname "$0")/dict/${name#fuzz_}.dict
[ -f "$dict" ] && args+=(-dict="$dict")
# libFuzzer exits 1 (set above: its default, 77, is what ctest reads as skipped) on a crash, a
# leak, UB, a timeout or going over the RSS limit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
"$bin" "${args[@]}" "$scratch" "$corpus"
