#!/usr/bin/env bash
# Configures and builds ftd (ninja, -j2, ccache) and the test guest.
#   scripts/build.sh [BUILD_DIR]     default: build
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD_DIR" -j2
scripts/build-guest.sh "$BUILD_DIR/guest"
# QEMU with ftd's record/replay fixes (replay/qemu-patches), from Debian's source package.
scripts/build-qemu.sh "$BUILD_DIR/qemu"
