#!/usr/bin/env bash
# Build the ftd test guest from Debian packages: kernel + busybox initramfs +
# template data disk. Usage: scripts/build-guest.sh [OUT_DIR]   (default build/guest)
#
# Outputs (contract in docs/guest.md):
#   OUT_DIR/vmlinuz        Debian's generic amd64 kernel (linux-image-amd64 -> versioned pkg)
#   OUT_DIR/initrd.img     gzip'd cpio newc: /init, busybox-static, kernel modules,
#                          /bin/ftguest-svc (gcc -static from guest/ftguest-svc.c)
#   OUT_DIR/vmlinux        the same kernel, decompressed (ELF with a PVH entry): QEMU
#                          boots it with -kernel too, ~5 s sooner under TCG (Debian's
#                          vmlinuz is xz-compressed and the decompressor is slow in
#                          TCG). Optional: omitted, with a warning, if it cannot be made.
#   OUT_DIR/data.qcow2     64 MiB qcow2 with an empty ext4 filesystem (template)
#   OUT_DIR/inputs.sha256  digest of all inputs; equal digest => "guest up to date"
#   OUT_DIR/manifest.txt   what went in (inputs, modules) and sha256 of each output
#   OUT_DIR/cache/         downloaded .deb files
#
# The kernel .deb is fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` in a temporary directory; nothing is installed on the host.
# Environment: FTGUEST_KERNEL_PKG=linux-image-X.Y.Z-N-amd64 pins the kernel
# package instead of resolving linux-image-amd64. SOURCE_DATE_EPOCH sets the
# timestamps inside the images (default fixed), so rebuilds are byte-identical.
set -euo pipefail

PROG=build-guest
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT="$ROOT/scripts/build-guest.sh"
GUEST_SRC="$ROOT/guest"
OUT=${1:-$ROOT/build/guest}
META_PKG=linux-image-amd64
EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
DISK_MIB=64
# Fixed filesystem identity, so that data.qcow2 is reproducible.
FS_UUID=6674642d-6775-4573-a000-000000000001
FS_HASH_SEED=6674642d-6775-4573-a000-000000000002
# Modules /init loads; their dependencies are resolved from the kernel itself.
MODULE_ROOTS=(e1000 virtio_pci virtio_blk ext4)

log() { echo "$PROG: $*" >&2; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

# need COMMAND DEBIAN-PACKAGE
need() {
    command -v "$1" >/dev/null 2>&1 || die "missing tool '$1' (install the Debian package '$2', e.g. scripts/install-deps.sh)"
}

need sha256sum coreutils
need flock util-linux
need stat coreutils
need apt-cache apt
need apt-get apt
need dpkg-deb dpkg
need dpkg-query dpkg
need busybox busybox-static
need gcc gcc
need readelf binutils
need cpio cpio
need gzip gzip
need mkfs.ext4 e2fsprogs
need qemu-img qemu-utils
need depmod kmod
need modprobe kmod

[ -f "$GUEST_SRC/init" ] || die "missing $GUEST_SRC/init"
[ -f "$GUEST_SRC/ftguest-svc.c" ] || die "missing $GUEST_SRC/ftguest-svc.c"

mkdir -p "$OUT/cache"
OUT=$(cd "$OUT" && pwd)
CACHE="$OUT/cache"

# One build per OUT_DIR at a time.
exec 9>"$OUT/.lock"
flock 9

# ---------------------------------------------------------------------------
# Resolve the kernel package: linux-image-amd64 -> linux-image-<abi>-amd64 and
# its candidate version. apt-cache is slow here (no pkgcache, ~1 s per call),
# so the answer is cached, keyed on the state of the apt lists.

apt_lists_key() {
    {
        echo "meta=$META_PKG pin=${FTGUEST_KERNEL_PKG:-}"
        stat -c '%n %s %Y' /var/lib/apt/lists/* /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true
    } | sha256sum | cut -d' ' -f1
}

APT_UPDATED=0
apt_update_once() {
    [ "$APT_UPDATED" = 0 ] || return 1
    APT_UPDATED=1
    [ "$(id -u)" = 0 ] || { log "apt lists look missing and 'apt-get update' needs root"; return 1; }
    log "running 'apt-get update' (package lists missing or stale)"
    apt-get update -qq >&2 || { log "'apt-get update' failed"; return 1; }
}

query_kernel_pkg() { # prints "PKG VERSION"
    local pkg ver
    if [ -n "${FTGUEST_KERNEL_PKG:-}" ]; then
        pkg=$FTGUEST_KERNEL_PKG
    else
        pkg=$(apt-cache depends "$META_PKG" 2>/dev/null |
              awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }') || true
        [ -n "$pkg" ] || return 1
    fi
    ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '$1 == "Version:" { print $2; exit }') || true
    [ -n "$ver" ] || return 1
    echo "$pkg $ver"
}

resolve_kernel() {
    local key resolved=""
    key=$(apt_lists_key)
    if [ -f "$CACHE/kernel.resolved" ] && [ "$(sed -n 1p "$CACHE/kernel.resolved")" = "$key" ]; then
        resolved=$(sed -n 2p "$CACHE/kernel.resolved")
    fi
    if [ -z "$resolved" ]; then
        resolved=$(query_kernel_pkg) || true
        if [ -z "$resolved" ] && apt_update_once; then
            key=$(apt_lists_key)
            resolved=$(query_kernel_pkg) || true
        fi
        if [ -z "$resolved" ]; then
            if [ -f "$CACHE/kernel.resolved" ]; then
                resolved=$(sed -n 2p "$CACHE/kernel.resolved")
                log "warning: cannot resolve $META_PKG with apt-cache; reusing the cached answer: $resolved"
            else
                die "cannot resolve '${FTGUEST_KERNEL_PKG:-$META_PKG}' with apt-cache (are Debian's package lists available? try 'apt-get update')"
            fi
        else
            printf '%s\n%s\n' "$key" "$resolved" > "$CACHE/kernel.resolved.tmp"
            mv -f "$CACHE/kernel.resolved.tmp" "$CACHE/kernel.resolved"
        fi
    fi
    KPKG=${resolved%% *}
    KVERSION=${resolved#* }
}

resolve_kernel

# ---------------------------------------------------------------------------
# Input digest: this script, guest/ sources, kernel package + version, and the
# versions of the host packages whose files end up in the images.

guest_files() {
    (cd "$GUEST_SRC" && find . -type f ! -name '*.md' ! -name '*~' -print | LC_ALL=C sort)
}

host_versions() {
    dpkg-query -W -f='${Package} ${Version}\n' busybox-static libc6-dev e2fsprogs 2>/dev/null || true
    echo "gcc $(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)"
}

inputs_listing() {
    echo "ftguest-inputs v1"
    echo "kernel-package $KPKG $KVERSION"
    echo "epoch $EPOCH"
    echo "script $(sha256sum < "$SCRIPT" | cut -d' ' -f1)"
    local f
    while IFS= read -r f; do
        echo "guest/${f#./} $(sha256sum < "$GUEST_SRC/$f" | cut -d' ' -f1)"
    done < <(guest_files)
    host_versions | sed 's/^/host /'
}

INPUTS=$(inputs_listing)
DIGEST=$(printf '%s\n' "$INPUTS" | sha256sum | cut -d' ' -f1)

if [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ] && [ -f "$OUT/data.qcow2" ] &&
   [ -f "$OUT/inputs.sha256" ] && [ "$(cat "$OUT/inputs.sha256")" = "$DIGEST" ]; then
    echo "guest up to date ($OUT, $KPKG $KVERSION)"
    exit 0
fi

# ---------------------------------------------------------------------------
# Full build, in a temporary directory inside OUT_DIR (same filesystem, so the
# final renames are atomic; the digest is written last).

T0=$(date +%s)
BUSYBOX=$(command -v busybox)
if readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'program interpreter'; then
    die "$BUSYBOX is dynamically linked: install the Debian package 'busybox-static'"
fi
case "$(gcc -print-file-name=libc.a)" in
    /*) ;;
    *) die "gcc cannot find a static libc.a: install the Debian package 'libc6-dev'" ;;
esac

rm -rf "$OUT"/.build.*   # left by a killed build (we hold the lock)
TMP=$(mktemp -d "$OUT/.build.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -- kernel package ---------------------------------------------------------
find_cached_deb() {
    local f
    for f in "$CACHE/${KPKG}"_*.deb; do
        [ -f "$f" ] || continue
        if [ "$(dpkg-deb -f "$f" Version 2>/dev/null)" = "$KVERSION" ]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}

download_kernel() {
    (cd "$CACHE" && apt-get download -q -o APT::Sandbox::User=root "$KPKG=$KVERSION" >&2)
}

DEB=$(find_cached_deb) || DEB=""
if [ -z "$DEB" ]; then
    log "downloading $KPKG $KVERSION into $CACHE"
    if ! download_kernel; then
        apt_update_once || true
        download_kernel || die "'apt-get download $KPKG=$KVERSION' failed (network or package lists?)"
    fi
    DEB=$(find_cached_deb) || die "downloaded $KPKG but no .deb with version $KVERSION appeared in $CACHE"
    # keep only the kernel in use in the cache
    for f in "$CACHE"/linux-image-*.deb; do
        [ "$f" = "$DEB" ] || rm -f "$f"
    done
else
    log "using cached $(basename "$DEB")"
fi

log "unpacking $(basename "$DEB")"
KX="$TMP/kernel"
dpkg-deb -x "$DEB" "$KX" || die "dpkg-deb -x $DEB failed (corrupt download? delete it from $CACHE)"
KVER=$(find "$KX/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort | head -n1)
if [ -z "$KVER" ] || [ ! -d "$KX/lib/modules/$KVER/kernel" ]; then
    die "$DEB holds no kernel modules"
fi
VMLINUZ="$KX/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || die "$DEB holds no boot/vmlinuz-$KVER"
depmod -b "$KX" "$KVER" || die "depmod on the unpacked kernel failed"

# -- initramfs tree -----------------------------------------------------------
R="$TMP/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,tmp,data,etc,root,lib/modules/"$KVER"}
cp "$BUSYBOX" "$R/bin/busybox"
chmod 0755 "$R/bin/busybox"
while IFS= read -r applet; do
    applet=${applet#/}
    case "$applet" in ""|bin/busybox|init|linuxrc) continue ;; esac
    mkdir -p "$R/$(dirname "$applet")"
    [ -e "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)
install -m 0755 "$GUEST_SRC/init" "$R/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"

log "compiling ftguest-svc"
gcc -static -O2 -Wall -Wextra -s -o "$R/bin/ftguest-svc" "$GUEST_SRC/ftguest-svc.c" ||
    die "compiling guest/ftguest-svc.c failed (needs gcc and libc6-dev's static libc.a)"

# Kernel modules: dependency closure, in load order, from the kernel's own
# metadata (modules.dep via modprobe --show-depends). Hardware-accelerated
# crypto under kernel/arch/ is skipped: TCG's default CPU lacks e.g. SSE4.2,
# so crc32c-intel would only fail to load; crc32c_generic serves ext4.
MODLIST="$TMP/modules.load"
: > "$MODLIST"
for m in "${MODULE_ROOTS[@]}"; do
    modprobe -d "$KX" -S "$KVER" --show-depends "$m" > "$TMP/deps.txt" ||
        die "kernel $KVER has no module '$m'"
    while read -r kind path _; do
        case "$kind" in
            insmod) ;;
            builtin) continue ;;
            *) continue ;;
        esac
        rel=${path#"$KX/lib/modules/$KVER/"}
        case "$rel" in kernel/arch/*/crypto/*) continue ;; esac
        grep -qxF "$rel" "$MODLIST" || echo "$rel" >> "$MODLIST"
    done < "$TMP/deps.txt"
done
MD="$R/lib/modules/$KVER"
LOADLIST=()
while IFS= read -r rel; do
    mkdir -p "$MD/$(dirname "$rel")"
    case "$rel" in
        *.ko)     cp "$KX/lib/modules/$KVER/$rel" "$MD/$rel"; out=$rel ;;
        *.ko.xz)  need xz xz-utils; out=${rel%.xz}; xz -dc "$KX/lib/modules/$KVER/$rel" > "$MD/$out" ;;
        *.ko.zst) need zstd zstd; out=${rel%.zst}; zstd -qdc "$KX/lib/modules/$KVER/$rel" > "$MD/$out" ;;
        *.ko.gz)  out=${rel%.gz}; gzip -dc "$KX/lib/modules/$KVER/$rel" > "$MD/$out" ;;
        *) die "unexpected module file $rel" ;;
    esac
    LOADLIST+=("$out")
done < "$MODLIST"
printf '%s\n' "${LOADLIST[@]}" > "$MD/ftguest.load"
for f in modules.builtin modules.builtin.modinfo modules.order; do
    [ -f "$KX/lib/modules/$KVER/$f" ] && cp "$KX/lib/modules/$KVER/$f" "$MD/$f"
done
depmod -b "$R" "$KVER" || die "depmod on the initramfs modules failed"
# the load order must put virtio_ring first among the virtio modules
grep -n virtio "$MD/ftguest.load" | head -n1 | grep -q '/virtio_ring\.ko$' ||
    die "module order check failed: virtio_ring is not the first virtio module"

# -- initramfs archive ----------------------------------------------------------
# Part 1, written by hand (no root or mknod needed): /dev and /dev/console, so
# the kernel can open the console before /init runs. Part 2: the tree, via GNU
# cpio. The kernel unpacks concatenated newc archives in order.
cpio_entry() { # NAME MODE(octal) RDEVMAJOR RDEVMINOR INO
    local name=$1 mode=$((8#$2)) maj=$3 min=$4 ino=$5
    local nsize=$(( ${#name} + 1 ))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$ino" "$mode" 0 0 1 "$EPOCH" 0 0 0 "$maj" "$min" "$nsize" 0
    printf '%s\0' "$name"
    local pad=$(( (4 - (110 + nsize) % 4) % 4 ))
    [ "$pad" = 0 ] || head -c "$pad" /dev/zero
}
{
    cpio_entry dev 040755 0 0 1
    cpio_entry dev/console 020600 5 1 2
    cpio_entry 'TRAILER!!!' 0 0 0 0
} > "$TMP/dev.cpio"

find "$R" -exec touch -h -d "@$EPOCH" {} +
(cd "$R" && find . -mindepth 1 -print | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet) > "$TMP/root.cpio" ||
    die "cpio failed"
mkdir -p "$TMP/out"
cat "$TMP/dev.cpio" "$TMP/root.cpio" | gzip -n -9 > "$TMP/out/initrd.img"
cp "$VMLINUZ" "$TMP/out/vmlinuz"
rm -rf "$KX"

# -- decompressed kernel for PVH boot (optional) --------------------------------
# Like the kernel's scripts/extract-vmlinux: find the payload's compression
# magic, decompress from there, keep it only if it is an ELF with a PVH
# entry note (Xen note type 0x12, XEN_ELFNOTE_PHYS32_ENTRY).
extract_vmlinux() {
    local img=$1 out=$2 magic tool off
    for magic in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08'; do
        tool=${magic%%:*}
        command -v "$tool" >/dev/null 2>&1 || continue
        while read -r off; do
            case "$tool" in
                xz)   tail -c +$((off + 1)) "$img" | xz -dc --single-stream > "$out" 2>/dev/null || true ;;
                zstd) tail -c +$((off + 1)) "$img" | zstd -qdc > "$out" 2>/dev/null || true ;;
                gzip) tail -c +$((off + 1)) "$img" | gzip -dc > "$out" 2>/dev/null || true ;;
            esac
            if [ "$(head -c 4 "$out" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] &&
               readelf -n "$out" 2>/dev/null | grep -q 'Xen.*0x00000012'; then
                return 0
            fi
        done < <(LC_ALL=C grep -obUaP "${magic#*:}" "$img" | cut -d: -f1 | head -n 5)
    done
    rm -f "$out"
    return 1
}
if extract_vmlinux "$TMP/out/vmlinuz" "$TMP/out/vmlinux"; then
    log "extracted vmlinux (PVH-bootable, $(stat -c %s "$TMP/out/vmlinux") bytes)"
else
    log "warning: could not extract a PVH-bootable vmlinux from vmlinuz; only vmlinuz is built"
fi

# -- data disk --------------------------------------------------------------------
log "making the ${DISK_MIB} MiB ext4 data disk"
truncate -s "${DISK_MIB}M" "$TMP/data.raw"
E2FSPROGS_FAKE_TIME=$EPOCH mkfs.ext4 -q -F -L ftdata -U "$FS_UUID" \
    -E "hash_seed=$FS_HASH_SEED,lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0" \
    "$TMP/data.raw" || die "mkfs.ext4 failed"
qemu-img convert -f raw -O qcow2 "$TMP/data.raw" "$TMP/out/data.qcow2" || die "qemu-img convert failed"
rm -f "$TMP/data.raw"

# -- manifest and install -----------------------------------------------------------
{
    echo "# ftguest build manifest (scripts/build-guest.sh)"
    echo "inputs-sha256 $DIGEST"
    printf '%s\n' "$INPUTS"
    echo "kernel-release $KVER"
    sed 's/^/module /' "$MD/ftguest.load"
    outs=(vmlinuz initrd.img data.qcow2)
    [ -f "$TMP/out/vmlinux" ] && outs+=(vmlinux)
    (cd "$TMP/out" && sha256sum "${outs[@]}" | awk '{ print "output " $2 " " $1 }')
} > "$TMP/out/manifest.txt"

rm -f "$OUT/inputs.sha256"
[ -f "$TMP/out/vmlinux" ] || rm -f "$OUT/vmlinux"
for f in vmlinuz vmlinux initrd.img data.qcow2 manifest.txt; do
    [ -f "$TMP/out/$f" ] && mv -f "$TMP/out/$f" "$OUT/$f"
done
echo "$DIGEST" > "$TMP/out/inputs.sha256"
mv -f "$TMP/out/inputs.sha256" "$OUT/inputs.sha256"

echo "guest built in $(( $(date +%s) - T0 )) s: $OUT ($KPKG $KVERSION, kernel $KVER," \
     "initrd $(stat -c %s "$OUT/initrd.img") bytes)"
