#!/usr/bin/env bash
# The main job (README command one): installs what is missing, builds ftd and the guest,
# then runs a VM under ftd and shows it serving.
#
# Today (output commit): the network lab (scripts/lab.sh) makes two hypervisors, hostA and
# hostB, a switch and a client, each in its own network namespace. An ftd on each host
# protects one guest: hostA records it and streams the log, hostB replays it live. The
# guest's NIC runs through hostA's ftd, which lets no frame out before hostB has acked the
# log that covers it; a client on the switch pings the guest and talks to its services.
# After a clean stop the backup's console is byte-identical. Failover comes next.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
CHANNEL_PORT=${CHANNEL_PORT:-7400}
export FTLAB=${FTLAB:-ftdemo}

step() { printf '\n==> %s\n' "$*"; }

step "installing dependencies (Debian packages)"
scripts/install-deps.sh
step "building ftd and the guest"
scripts/build.sh "$BUILD_DIR"

DEMO=$(mktemp -d /tmp/ftd-demo.XXXXXX)
export FTLAB_DIR="$DEMO/lab"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  scripts/lab.sh down >/dev/null 2>&1 || true
  rm -rf "$DEMO"
}
trap cleanup EXIT

step "network lab: hostA, hostB, a switch and a client in network namespaces"
scripts/lab.sh up
eval "$(scripts/lab.sh env)"
# `ip netns exec` execs the command in place, so $! of a backgrounded one is its own PID.
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

GUEST="$ROOT/$BUILD_DIR/guest"
# The guest build also leaves Debian's kernel decompressed (vmlinux): ~5 s faster under TCG.
KERNEL="$GUEST/vmlinuz"
[ -f "$GUEST/vmlinux" ] && KERNEL="$GUEST/vmlinux"
FTCTL="$BUILD_DIR/ftd/ftctl"

# Two "hypervisors" on this machine: hostA runs the primary, hostB the backup. Each has its
# own state, runtime dir and disk replica; they share only the channel key.
head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > "$DEMO/channel.key"
chmod 600 "$DEMO/channel.key"
for host in hostA hostB; do
  mkdir -p "$DEMO/$host"
  cp "$GUEST/data.qcow2" "$DEMO/$host/web1-data.qcow2"
  if [ "$host" = hostA ]; then role=primary; chan="peer = $FTLAB_B_FT_IP:$CHANNEL_PORT"
  else role=backup; chan="listen = $FTLAB_B_FT_IP:$CHANNEL_PORT"; fi
  cat > "$DEMO/$host/ftd.conf" <<CONF
[node]
name = $host
state_dir = $DEMO/$host/state
run_dir = $DEMO/$host/run
$chan
channel_key_file = $DEMO/channel.key

[vm web1]
memory_mib = 256
kernel = $KERNEL
initrd = $GUEST/initrd.img
cmdline = console=ttyS0 ftguest.ip=$FTLAB_VM_IP/$FTLAB_PREFIXLEN ftguest.workload=timer,chaos nohz=off
disk.vda = $DEMO/$host/web1-data.qcow2
nic = bridge
bridge = $FTLAB_HOST_BRIDGE
qemu = $ROOT/$BUILD_DIR/qemu/bin/qemu-system-x86_64
ft = $role
CONF
done

step "starting ftd on hostB (backup) and hostA (primary)"
ip netns exec "$FTLAB_NS_B" "$BUILD_DIR/ftd/ftd" --config "$DEMO/hostB/ftd.conf" > "$DEMO/hostB/ftd.log" 2>&1 &
B_PID=$!; PIDS+=("$B_PID")
for _ in $(seq 1 300); do grep -q "logging channel: listening" "$DEMO/hostB/ftd.log" && break; sleep 0.1; done
ip netns exec "$FTLAB_NS_A" "$BUILD_DIR/ftd/ftd" --config "$DEMO/hostA/ftd.conf" > "$DEMO/hostA/ftd.log" 2>&1 &
A_PID=$!; PIDS=("$A_PID" "$B_PID")  # stop the primary first
CONSOLE_A="$DEMO/hostA/state/vms/web1/console.log"
CONSOLE_B="$DEMO/hostB/state/vms/web1/console.log"
for _ in $(seq 1 1800); do
  grep -q "ftguest: ready" "$CONSOLE_B" 2>/dev/null && break
  kill -0 "$A_PID" 2>/dev/null || { cat "$DEMO/hostA/ftd.log"; echo "ftd on hostA exited" >&2; exit 1; }
  kill -0 "$B_PID" 2>/dev/null || { cat "$DEMO/hostB/ftd.log"; echo "ftd on hostB exited" >&2; exit 1; }
  sleep 0.1
done
grep -q "ftguest: ready" "$CONSOLE_B" || { echo "the backup did not replay the guest's boot in 180 s" >&2; tail -20 "$DEMO/hostB/ftd.log"; exit 1; }
grep -E "PROTECTED|UNPROTECTED|primary, epoch|backup, epoch|connected" "$DEMO"/host?/ftd.log | sed "s|$DEMO/||; s/^/  /"
echo "  hostA console | $(grep 'ftguest: ready' "$CONSOLE_A")"
echo "  hostB console | $(grep 'ftguest: ready' "$CONSOLE_B")   (replayed from hostA's log)"

step "the client ($FTLAB_CLIENT_IP) talks to the protected guest ($FTLAB_VM_IP) through hostA's output gate"
in_ns "$FTLAB_NS_C" ping -c 5 -i 0.2 "$FTLAB_VM_IP" | sed 's/^/  /'
in_ns "$FTLAB_NS_C" "$BUILD_DIR/tests/support/ftguest-probe" stream --host "$FTLAB_VM_IP" --port 7000 --lines 200 --echoes 5
in_ns "$FTLAB_NS_C" "$BUILD_DIR/tests/support/ftguest-probe" records --host "$FTLAB_VM_IP" --port 7001 --count 20

step "ftctl on both hosts (the operator's view)"
"$FTCTL" --socket "$DEMO/hostA/run/ftd.sock" list | sed 's/^/  hostA | /'
"$FTCTL" --socket "$DEMO/hostB/run/ftd.sock" list | sed 's/^/  hostB | /'
"$FTCTL" --socket "$DEMO/hostA/run/ftd.sock" status web1 | sed 's/^/  hostA | /'

step "stopping the primary cleanly: the backup replays to the end of its log"
QEMU_A=$(cat "$DEMO/hostA/run/web1/qemu.pid")
kill -TERM "$A_PID"
wait "$A_PID" && rc=0 || rc=$?
[ "$rc" -eq 0 ] || { echo "ftd on hostA exited with $rc" >&2; tail "$DEMO/hostA/ftd.log"; exit 1; }
for _ in $(seq 1 600); do
  "$FTCTL" --socket "$DEMO/hostB/run/ftd.sock" status web1 --json 2>/dev/null \
    | grep -q '"ft_state":"finished".*"qemu_pid":0\|"qemu_pid":0.*"ft_state":"finished"' && break
  sleep 0.1
done
"$FTCTL" --socket "$DEMO/hostB/run/ftd.sock" status web1 | grep -E "FT state|Log|Replayed" | sed 's/^/  hostB | /'
if cmp -s "$CONSOLE_A" "$CONSOLE_B"; then
  echo "  consoles: byte-identical ($(wc -c < "$CONSOLE_A") bytes, $(grep -c 'chaos:' "$CONSOLE_A") nondeterministic chaos lines)"
else
  echo "the backup's console differs from the primary's:" >&2; cmp "$CONSOLE_A" "$CONSOLE_B" >&2; exit 1
fi
kill -TERM "$B_PID"; wait "$B_PID" || true
if kill -0 "$QEMU_A" 2>/dev/null; then echo "QEMU pid $QEMU_A still running" >&2; exit 1; fi
for host in hostA hostB; do
  if [ -e "$DEMO/$host/run" ]; then echo "runtime dir of $host left behind" >&2; exit 1; fi
done
step "main job OK: a client pinged and talked to a protected guest through hostA's output gate while hostB replayed it in lockstep; the backup's console is byte-identical; both stopped cleanly"
