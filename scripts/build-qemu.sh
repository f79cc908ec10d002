#!/usr/bin/env bash
# Builds the QEMU that ftd runs protected VMs on: Debian 12's QEMU 7.2 source package
# (apt-get source, so nothing comes from outside Debian's registry) with Debian's own
# patches plus ftd's record/replay fixes (replay/qemu-patches/), x86_64 system emulator
# only, into OUT_DIR/bin/qemu-system-x86_64. It uses the firmware of Debian's installed
# qemu-system-x86 (/usr/share/qemu). Cached: nothing is rebuilt while the source version,
# the patches and this script are unchanged.
#   scripts/build-qemu.sh [OUT_DIR]     default: build/qemu
set -euo pipefail
SELF=$(realpath "$0")
cd "$(dirname "$SELF")/.."
ROOT=$(pwd)
OUT=$(realpath -m "${1:-build/qemu}")
PATCHES="$ROOT/replay/qemu-patches"
JOBS=${JOBS:-2}


# The source version is the one of the installed binary package: record and replay hosts
# built this way from the same Debian release run the same QEMU.
VERSION=$(dpkg-query -W -f='${source:Version}' qemu-system-x86 2>/dev/null || true)
[ -n "$VERSION" ] || { echo "build-qemu: qemu-system-x86 is not installed (scripts/install-deps.sh)" >&2; exit 1; }
DIGEST=$( { echo "$VERSION"; cat "$PATCHES"/*.patch "$SELF"; } | sha256sum | cut -c1-16)
if [ -x "$OUT/bin/qemu-system-x86_64" ] && [ "$(cat "$OUT/.digest" 2>/dev/null)" = "$DIGEST" ]; then
  echo "build-qemu: up to date ($OUT/bin/qemu-system-x86_64, qemu $VERSION + ftd patches)"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "build-qemu: not root: cannot fetch Debian's qemu source (apt-get); protected VMs will run" >&2
  echo "build-qemu: Debian's QEMU, whose replay can hang (replay/qemu-patches/README.md)" >&2
  exit 0
fi

# deb-src for the suites the machine's apt sources already use (Debian's registry only),
# until apt knows the source of exactly the installed version.
if ! apt-cache showsrc qemu 2>/dev/null | grep -x "Version: $VERSION" >/dev/null; then
  echo "build-qemu: adding deb-src entries for Debian's sources"
  cat > /etc/apt/sources.list.d/ftd-debian-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -q
fi

mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d "$OUT.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
echo "build-qemu: fetching Debian's qemu $VERSION source package"
apt-get source -q "qemu=$VERSION" >/dev/null 2>apt-source.log || {
  cat apt-source.log >&2; echo "build-qemu: apt-get source qemu=$VERSION failed" >&2; exit 1; }
SRC=$(find . -maxdepth 1 -type d -name 'qemu-*' | head -1)
cd "$SRC"
for p in "$PATCHES"/*.patch; do
  echo "build-qemu: applying $(basename "$p")"
  patch -p1 --forward --quiet < "$p"
done

echo "build-qemu: configuring (x86_64-softmmu only)"
CC_WRAP=gcc
command -v ccache >/dev/null && CC_WRAP="ccache gcc"
# The work directory's name changes with every build: hash paths relative to it, so a
# rebuild after a patch changes compiles only what the patch touched.
export CCACHE_BASEDIR="$WORK" CCACHE_NOHASHDIR=1
mkdir -p build && cd build
# Debian's firmware search path (debian/rules FIRMWAREPATH): SeaBIOS, iPXE ROMs.
../configure --prefix=/usr --target-list=x86_64-softmmu --cc="$CC_WRAP" \
  --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu \
  --with-pkgversion="Debian $VERSION + ftd-rr" \
  --disable-docs --disable-werror --disable-debug-info --disable-user --disable-tools \
  --disable-guest-agent --disable-gtk --disable-sdl --disable-vnc --disable-opengl \
  --disable-spice --disable-virglrenderer --disable-xen --disable-kvm --enable-tcg \
  --enable-slirp --enable-fdt=system --disable-capstone --disable-libusb \
  --disable-usb-redir --disable-smartcard --disable-curl --disable-rbd \
  --disable-glusterfs --disable-libiscsi --disable-libnfs --disable-libssh \
  --disable-seccomp --disable-vhost-user-blk-server --disable-virtfs \
  --disable-pa --disable-alsa --disable-oss --disable-jack --disable-sndio \
  > configure.log 2>&1 || { tail -30 configure.log >&2; echo "build-qemu: configure failed" >&2; exit 1; }
echo "build-qemu: compiling with $JOBS jobs"
ninja -j"$JOBS" qemu-system-x86_64 > ninja.log 2>&1 || { tail -40 ninja.log >&2; echo "build-qemu: build failed" >&2; exit 1; }
# QEMU finds its data relative to its binary (<bin>/../share/qemu, ...: relocatable
# installs); OUT/share and OUT/lib lead to the firmware Debian installed.
mkdir -p "$OUT/bin"
rm -f "$OUT/qemu-system-x86_64"
install -m 0755 qemu-system-x86_64 "$OUT/bin/qemu-system-x86_64"
ln -sfn /usr/share "$OUT/share"
ln -sfn /usr/lib "$OUT/lib"
echo "$DIGEST" > "$OUT/.digest"
echo "build-qemu: built $OUT/bin/qemu-system-x86_64 (Debian qemu $VERSION + $(ls "$PATCHES"/*.patch | wc -l) ftd patch(es))"
