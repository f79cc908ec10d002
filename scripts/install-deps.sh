#!/usr/bin/env bash
# Installs everything ftd needs to build, test and run, from Debian's registry only.
# Idempotent: when every package is present it returns in well under a second.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build ccache pkg-config git clang-format
  # the fuzz targets (scripts/build-fuzz.sh): clang, libFuzzer + sanitizer runtimes, and
  # llvm-symbolizer for readable stack traces
  clang-14 libclang-rt-14-dev llvm-14
  # libraries
  libasio-dev libspdlog-dev libfmt-dev protobuf-compiler libprotobuf-dev
  libgtest-dev libgmock-dev googletest nlohmann-json3-dev libcli11-dev libsystemd-dev
  libssl-dev libzstd-dev libvirt-dev
  libxml2-dev  # ft_libvirt parses domain XML with it
  # QEMU and libvirt (libvirt defines VMs; ftd runs QEMU itself)
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients
  # the guest image (scripts/build-guest.sh) and the lab
  busybox-static e2fsprogs cpio zstd kmod iproute2 iputils-ping socat procps
  # systemd-analyze checks ftd/systemd/ftd.service (tests/integration/systemd_unit_test.sh)
  systemd
  # building QEMU from Debian's source package with ftd's patches (scripts/build-qemu.sh)
  dpkg-dev meson libglib2.0-dev libpixman-1-dev libslirp-dev zlib1g-dev libfdt-dev
  python3-venv
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get install)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# libvirt's postinst tries to start services; with no systemd as PID 1 that must not fail us.
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
