#!/usr/bin/env bash
# The test command (README command two, and what .ci/run calls): installs what is missing,
# builds, then runs every test (unit, then integration with real QEMU) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

scripts/install-deps.sh
scripts/build.sh "$BUILD_DIR"

# Every test has its own timeout (tests/CMakeLists.txt); this bounds the whole run.
cd "$BUILD_DIR"
exec timeout --kill-after=30 1800 ctest --output-on-failure --timeout 600 -j1 "$@"
