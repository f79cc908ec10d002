#!/usr/bin/env bash
# Configures and builds the libFuzzer targets (fuzz/, docs/fuzzing.md) with clang, ASan and
# UBSan in their own build dir (ninja, -j2, ccache): only the parsers' libraries and fuzz/.
#   scripts/build-fuzz.sh [BUILD_DIR]     default: build-fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build-fuzz}

CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD_DIR" -G Ninja -DFTD_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD_DIR" -j2 fuzz_targets
