#!/usr/bin/env bash
# The test command (README command two, and what .ci/run calls): installs what is missing,
# builds, then runs every test (the fuzz targets' bounded runs, unit, then integration with
# real QEMU) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

scripts/install-deps.sh
scripts/build.sh "$BUILD_DIR"
# The fuzz targets are built by clang in a second build dir; ctest's fuzz_* tests run them.
scripts/build-fuzz.sh "$BUILD_DIR-fuzz"

# Every test has its own timeout (tests/CMakeLists.txt); this bounds the whole run.
cd "$BUILD_DIR"
exec timeout --kill-after=30 1800 ctest --output-on-failure --timeout 600 -j1 "$@"
