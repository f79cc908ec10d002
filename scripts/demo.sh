#!/usr/bin/env bash
# The main job (README command one): installs what is missing, builds ftd and the guest,
# then runs a VM under ftd and shows it serving.
#
# Today (foundation): ftd boots the guest from its config, the guest's TCP services answer
# from the host, and SIGTERM stops everything cleanly. It grows into the two-host protected
# VM with a failover as the lockstep, output-commit and failover work lands.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
STREAM_PORT=${STREAM_PORT:-17080}
RECORDS_PORT=${RECORDS_PORT:-17081}

step() { printf '\n==> %s\n' "$*"; }

step "installing dependencies (Debian packages)"
scripts/install-deps.sh
step "building ftd and the guest"
scripts/build.sh "$BUILD_DIR"

DEMO=$(mktemp -d /tmp/ftd-demo.XXXXXX)
FTD_PID=""
cleanup() {
  if [ -n "$FTD_PID" ] && kill -0 "$FTD_PID" 2>/dev/null; then
    kill -TERM "$FTD_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$FTD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$FTD_PID" 2>/dev/null || true
  fi
  rm -rf "$DEMO"
}
trap cleanup EXIT

GUEST="$ROOT/$BUILD_DIR/guest"
# The guest build also leaves Debian's kernel decompressed (vmlinux): ~5 s faster under TCG.
KERNEL="$GUEST/vmlinuz"
[ -f "$GUEST/vmlinux" ] && KERNEL="$GUEST/vmlinux"
cp "$GUEST/data.qcow2" "$DEMO/web1-data.qcow2"
cat > "$DEMO/ftd.conf" <<CONF
[node]
name = hostA
state_dir = $DEMO/state
run_dir = $DEMO/run

[vm web1]
memory_mib = 256
kernel = $KERNEL
initrd = $GUEST/initrd.img
cmdline = console=ttyS0 ftguest.ip=10.0.2.15/24 ftguest.gw=10.0.2.2 ftguest.workload=chaos
disk.vda = $DEMO/web1-data.qcow2
nic = user
forward = 127.0.0.1:$STREAM_PORT -> 7000
forward = 127.0.0.1:$RECORDS_PORT -> 7001
CONF

step "starting ftd (config $DEMO/ftd.conf)"
"$BUILD_DIR/ftd/ftd" --config "$DEMO/ftd.conf" > "$DEMO/ftd.log" 2>&1 &
FTD_PID=$!
CONSOLE="$DEMO/state/vms/web1/console.log"
for _ in $(seq 1 1200); do
  grep -q "ftguest: ready" "$CONSOLE" 2>/dev/null && break
  kill -0 "$FTD_PID" 2>/dev/null || { cat "$DEMO/ftd.log"; echo "ftd exited" >&2; exit 1; }
  sleep 0.1
done
grep -q "ftguest: ready" "$CONSOLE" || { echo "guest did not boot in 120 s" >&2; cat "$DEMO/ftd.log"; exit 1; }
sed 's/^/  ftd | /' "$DEMO/ftd.log"
echo "  console | $(grep 'ftguest: ready' "$CONSOLE")"

step "talking to the guest's services from the host"
"$BUILD_DIR/tests/support/ftguest-probe" stream --port "$STREAM_PORT" --lines 200 --echoes 5
"$BUILD_DIR/tests/support/ftguest-probe" records --port "$RECORDS_PORT" --count 20
echo "  console (last lines):"
tail -n 3 "$CONSOLE" | sed 's/^/  console | /'

step "ftctl list (the operator's view)"
"$BUILD_DIR/ftd/ftctl" --socket "$DEMO/run/ftd.sock" list | sed 's/^/  /'

step "stopping ftd with SIGTERM"
QEMU_PID=$(cat "$DEMO/run/web1/qemu.pid")
kill -TERM "$FTD_PID"
wait "$FTD_PID" && rc=0 || rc=$?
FTD_PID=""
tail -n 3 "$DEMO/ftd.log" | sed 's/^/  ftd | /'
if kill -0 "$QEMU_PID" 2>/dev/null; then echo "QEMU pid $QEMU_PID still running" >&2; exit 1; fi
if [ -e "$DEMO/run" ]; then echo "runtime dir left behind" >&2; exit 1; fi
[ "$rc" -eq 0 ] || { echo "ftd exited with $rc" >&2; exit 1; }
step "main job OK: guest booted under ftd, served TCP from the host, stopped cleanly (QEMU pid $QEMU_PID gone)"
