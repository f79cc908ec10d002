#!/usr/bin/env bash
# The main job (README command one): installs what is missing, builds ftd and the guest,
# then runs a protected VM on a two-host lab and fails it over.
#
# The network lab (scripts/lab.sh) makes two hypervisors, hostA and hostB, a switch and a
# client, each in its own network namespace. An ftd on each host protects one guest: hostA
# records it and streams the log, hostB replays it live. The guest's NIC runs through
# hostA's ftd, which lets no frame out before hostB has acked the log that covers it; a
# client on the switch pings the guest and talks to its services. Then the failover drill:
# while the client holds one TCP connection to the guest's stream service, hostA's links are
# cut and its ftd and QEMU are SIGKILLed; hostB wins the next epoch on the shared claim
# store, replays to the end of the log it received, goes live and the client's connection
# carries on without a gap. The consoles agree up to where hostA's log stopped reaching
# hostB; the client pings the guest on hostB and hostB's ftd stops cleanly.
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
  scripts/lab.sh down >/dev/null 2>&1 || true  # also undoes a cut: the namespaces go
  rm -rf "$DEMO"
}
trap cleanup EXIT
# Drops a PID from the cleanup list once it has been reaped (its number may be reused).
forget() { local keep=() pid; for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done; PIDS=("${keep[@]}"); }

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
# own state, runtime dir and disk replica; they share the channel key and the claim store
# (the lab's shared directory, as storage both hosts mount would be): when one host dies,
# the other goes live only after winning the next epoch there.
"$FTCTL" init-storage "$FTLAB_SHARED_DIR" | sed "s/^/  /"
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
shared_storage = $FTLAB_SHARED_DIR

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

SOCK_B="$DEMO/hostB/run/ftd.sock"
PROBE="$BUILD_DIR/tests/support/ftguest-probe"
# hostB's `ftctl status web1 --json`, and one field (a string or a number) of such JSON on
# stdin (empty if none; ftctl prints `"key": value`).
status_json_b() { "$FTCTL" --socket "$SOCK_B" status web1 --json 2>/dev/null || true; }
field() {
  grep -o "\"$1\": *\\(\"[^\"]*\"\\|[0-9]*\\)" | head -1 | cut -d: -f2 | tr -d '" ' || true
}
status_b() { status_json_b | field "$1"; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }

step "failover drill: hostA dies while the client streams from the guest over one TCP connection"
# 750 lines at the guest's 20 ms beat: ~15 s, hostA's death ~3 s in. The probe checks every
# line's sequence number and CRC and its echoes: any gap, duplicate or corrupt byte fails it.
QEMU_A=$(cat "$DEMO/hostA/run/web1/qemu.pid")
QEMU_B_REPLAY=$(status_b qemu_pid)
# hostB's console as its guest printed it, replayed and then live, followed from the first
# byte: the live QEMU opens console.log anew at go-live, which empties the replayed part.
tail -c +1 -F "$CONSOLE_B" > "$DEMO/hostB/console.followed" 2> "$DEMO/hostB/console.follow-err" &
FOLLOW_PID=$!; PIDS+=("$FOLLOW_PID")
in_ns "$FTLAB_NS_C" "$PROBE" stream --host "$FTLAB_VM_IP" --port 7000 --lines 750 --echoes 5 \
  > "$DEMO/probe.log" 2>&1 &
PROBE_PID=$!; PIDS=("$PROBE_PID" "${PIDS[@]}")
sleep 3
kill -0 "$PROBE_PID" 2>/dev/null || { cat "$DEMO/probe.log" >&2; echo "the probe ended before the drill" >&2; exit 1; }
scripts/lab.sh cut-host a | sed 's/^/  /'
CUT_MS=$(ms_now)
kill -KILL "$A_PID" "$QEMU_A"
wait "$A_PID" 2>/dev/null || true; forget "$A_PID"  # 137: SIGKILL
echo "  $(date +%T.%3N) hostA is dead: links cut, ftd (pid $A_PID) and QEMU (pid $QEMU_A) SIGKILLed"
LIVE_MS=
while [ $(( $(ms_now) - CUT_MS )) -lt 30000 ]; do
  J=$(status_json_b)
  if [ "$(field role <<<"$J")" = primary ] && [ "$(field ft_state <<<"$J")" = unprotected ] \
      && [ "$(field qemu_pid <<<"$J")" -gt 0 ] 2>/dev/null; then
    LIVE_MS=$(ms_now); break
  fi
  kill -0 "$B_PID" 2>/dev/null || { tail -20 "$DEMO/hostB/ftd.log" >&2; echo "ftd on hostB exited" >&2; exit 1; }
  sleep 0.05
done
if [ -z "$LIVE_MS" ]; then
  echo "hostB did not go live within 30 s of the cut" >&2
  "$FTCTL" --socket "$SOCK_B" status web1 >&2 || true; tail -30 "$DEMO/hostB/ftd.log" >&2; exit 1
fi
echo "  $(date +%T.%3N) hostB is live (role primary, epoch $(status_b epoch), QEMU pid $(status_b qemu_pid))"
wait "$PROBE_PID" && rc=0 || rc=$?
forget "$PROBE_PID"
sed 's/^/  client | /' "$DEMO/probe.log"
[ "$rc" -eq 0 ] || { echo "the client's stream failed across the failover (exit $rc)" >&2; tail -30 "$DEMO/hostB/ftd.log" >&2; exit 1; }
"$FTCTL" --socket "$SOCK_B" status web1 | grep -E "^(Role|FT state|Epoch|NIC|Failover):|^  " | sed 's/^/  hostB | /'
J=$(status_json_b); LOST_NS=$(field peer_lost_ns <<<"$J"); LIVE_NS=$(field live_ns <<<"$J")
echo "  failover: hostB live $(( LIVE_MS - CUT_MS )) ms after the cut (as polled;" \
  "$(( (LIVE_NS - LOST_NS) / 1000000 )) ms from loss detected to live); the client's TCP connection survived"

step "consoles after the failover: equal up to where hostA's log stopped reaching hostB"
# hostB went on live, and hostA may have printed bytes whose log never left it: the two can
# no longer be byte-identical, but hostB's must contain all of hostA's but its last moments.
sleep 0.5; kill -TERM "$FOLLOW_PID"; wait "$FOLLOW_PID" 2>/dev/null || true; forget "$FOLLOW_PID"
FOLLOWED_B="$DEMO/hostB/console.followed"
if grep -q "truncated" "$DEMO/hostB/console.follow-err"; then
  echo "  note: hostB's console.log was emptied at go-live (now $(wc -c < "$CONSOLE_B") bytes, the live part" \
    "only); compared here is hostB's whole console as followed from its first byte"
fi
SIZE_A=$(wc -c < "$CONSOLE_A"); SIZE_B=$(wc -c < "$FOLLOWED_B")
if CMP=$(cmp -- "$CONSOLE_A" "$FOLLOWED_B" 2>&1); then COMMON=$SIZE_A
elif [[ $CMP =~ differ:\ (byte|char)\ ([0-9]+) ]]; then COMMON=$(( BASH_REMATCH[2] - 1 ))
elif [[ $CMP == *EOF* ]]; then COMMON=$(( SIZE_A < SIZE_B ? SIZE_A : SIZE_B ))
else echo "cmp failed: $CMP" >&2; exit 1; fi
echo "  hostA console: $SIZE_A bytes; hostB console: $SIZE_B bytes"
echo "  common prefix: $COMMON bytes; hostA printed $(( SIZE_A - COMMON )) bytes beyond it," \
  "hostB's goes on for $(( SIZE_B - COMMON )) more (the guest, live on hostB)"
if [ "$COMMON" -lt $(( SIZE_A - 4096 )) ]; then
  echo "the consoles diverge more than 4096 bytes before the end of hostA's" >&2; echo "$CMP" >&2; exit 1
fi

step "the client pings the guest, now served by hostB"
in_ns "$FTLAB_NS_C" ping -c 5 -i 0.2 "$FTLAB_VM_IP" | sed 's/^/  /'

step "stopping hostB's ftd cleanly"
QEMU_B=$(status_b qemu_pid)
kill -TERM "$B_PID"
wait "$B_PID" && rc=0 || rc=$?
forget "$B_PID"
[ "$rc" -eq 0 ] || { echo "ftd on hostB exited with $rc" >&2; tail "$DEMO/hostB/ftd.log" >&2; exit 1; }
for pid in "$QEMU_A" "$QEMU_B_REPLAY" "$QEMU_B"; do
  if kill -0 "$pid" 2>/dev/null; then echo "QEMU pid $pid still running" >&2; exit 1; fi
done
if LEFT=$(pgrep -af -- "$DEMO/"); then echo "processes of the demo left running:" >&2; echo "$LEFT" >&2; exit 1; fi
if [ -e "$DEMO/hostB/run" ]; then echo "runtime dir of hostB left behind" >&2; exit 1; fi
echo "  ftd on hostB exited 0; no QEMU left; hostB's runtime dir removed" \
  "(hostA's stays, as a crashed host leaves it)"
step "main job OK: a client talked to a protected guest through hostA's output gate while hostB replayed it in lockstep; hostA died and hostB went live in $(( LIVE_MS - CUT_MS )) ms with the client's TCP connection intact; hostB stopped cleanly"
