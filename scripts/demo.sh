#!/usr/bin/env bash
# The main job (README command one): installs what is missing, builds ftd and the guest,
# then tells the operator's story of a protected VM on a two-host lab and fails it over.
#
# The network lab (scripts/lab.sh) makes two hypervisors, hostA and hostB, a switch and a
# client, each in its own network namespace. A libvirtd (started if none answers) holds the
# guest as the libvirt domain web1, shut off: libvirt only defines it, ftd runs it. An ftd
# runs on each host with the same [node]-only config (each listens on its own channel
# address and has the other as its peer). `ftctl enable web1` on hostA turns FT on: hostA's
# ftd runs the domain as the primary (recording) and hostB's runs its backup (replaying
# hostA's log live). The guest's NIC runs through hostA's ftd, which lets no frame out
# before hostB has acked the log that covers it; a client on the switch pings the guest and
# talks to its stream service. Then `ftctl drill web1` on hostA, while the client holds one
# TCP connection to the guest: hostA's QEMU is killed for real and its ftd goes silent, as
# a crashed host would; hostB declares it lost, wins the next epoch on the shared claim
# store, replays to the end of the log it received and goes live, and the client's
# connection carries on without a gap. ftctl prints the drill's report. Then hostB
# re-protects the running VM by itself (reprotect = auto: a snapshot of it goes to hostA,
# whose ftd replaces its halted copy with a backup started from it), a second drill kills
# hostB's copy and hostA takes over, with the client on one TCP connection throughout; hostA
# re-protects in turn, `ftctl disable` on hostA turns FT off (hostB's backup goes, hostA runs
# on unprotected), both ftds stop cleanly, and everything the demo made is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
CHANNEL_PORT=${CHANNEL_PORT:-7400}
DOMAIN=web1
VIRSH=(virsh -q -c qemu:///system)
export FTLAB=${FTLAB:-ftdemo}

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "demo FAILED: $*" >&2; exit 1; }
T0=$(date +%s)

step "installing dependencies (Debian packages)"
scripts/install-deps.sh
step "building ftd and the guest"
scripts/build.sh "$BUILD_DIR"
T_BUILT=$(date +%s)

DEMO=$(mktemp -d /tmp/ftd-demo.XXXXXX)
export FTLAB_DIR="$DEMO/lab"
PIDS=()             # processes the demo started, stopped in this order by the trap
LIBVIRTD_STARTED=0  # 1: the demo started libvirtd and stops it at the end
DOMAIN_DEFINED=0    # 1: the demo defined the domain and undefines it at the end
LAB_UP=0
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [ "$DOMAIN_DEFINED" = 1 ]; then
    timeout 30 "${VIRSH[@]}" undefine "$DOMAIN" >/dev/null 2>&1 ||
      echo "demo: could not undefine the libvirt domain '$DOMAIN'" >&2
  fi
  # Also undoes anything left in the lab: the namespaces go.
  [ "$LAB_UP" = 1 ] && { scripts/lab.sh down >/dev/null 2>&1 || true; }
  if [ "$LIBVIRTD_STARTED" = 1 ]; then scripts/libvirtd.sh stop >/dev/null 2>&1 || true; fi
  rm -rf "$DEMO"
  [ "$rc" -eq 0 ] || echo "demo: exited with $rc; cleaned up what it had started" >&2
}
trap cleanup EXIT
# Drops a PID from the cleanup list once it has been reaped (its number may be reused).
forget() { local keep=() pid; for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done; PIDS=("${keep[@]}"); }

step "network lab: hostA, hostB, a switch and a client in network namespaces"
LAB_UP=1
scripts/lab.sh up
eval "$(scripts/lab.sh env)"
# `ip netns exec` execs the command in place, so $! of a backgrounded one is its own PID.
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

GUEST="$ROOT/$BUILD_DIR/guest"
# The guest build also leaves Debian's kernel decompressed (vmlinux): ~5 s faster under TCG.
KERNEL="$GUEST/vmlinuz"
[ -f "$GUEST/vmlinux" ] && KERNEL="$GUEST/vmlinux"
FTCTL="$ROOT/$BUILD_DIR/ftd/ftctl"
PROBE="$ROOT/$BUILD_DIR/tests/support/ftguest-probe"
QEMU="$ROOT/$BUILD_DIR/qemu/bin/qemu-system-x86_64"
SOCK_A="$DEMO/hostA/run/ftd.sock"
SOCK_B="$DEMO/hostB/run/ftd.sock"
ftctl_a() { timeout 120 "$FTCTL" --socket "$SOCK_A" "$@"; }
ftctl_b() { timeout 120 "$FTCTL" --socket "$SOCK_B" "$@"; }
# One field (a string or a number) of ftctl's JSON on stdin, the first one of that name
# (empty if none; ftctl prints `"key": value`). Protobuf's JSON mapping
# (docs/formats/control-socket.md, "ftctl --json"): a state is its proto enum name
# (VM_FT_STATE_PROTECTED, FT_ROLE_PRIMARY), a 64-bit number a quoted string ("2": read as 2).
field() {
  grep -o "\"$1\": *\\(\"[^\"]*\"\\|-\\?[0-9]*\\)" | head -1 | cut -d: -f2- | tr -d '" ' || true
}
status_json() { timeout 20 "$FTCTL" --socket "$1" status "$DOMAIN" --json 2>/dev/null || true; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
indent() { sed "s/^/  ${1:-}/"; }

step "libvirt: a libvirtd for qemu:///system, and the guest as the domain '$DOMAIN'"
if scripts/libvirtd.sh status >/dev/null 2>&1; then
  scripts/libvirtd.sh status | indent
else
  OUT=$(scripts/libvirtd.sh start 2>&1) && rc=0 || rc=$?
  # Only a libvirtd this run started is stopped at the end (not one that came up meanwhile).
  case $OUT in *"started libvirtd"*) LIBVIRTD_STARTED=1 ;; esac
  echo "$OUT" | indent
  [ "$rc" -eq 0 ] || fail "scripts/libvirtd.sh start failed (exit $rc)"
fi
if timeout 30 "${VIRSH[@]}" dominfo "$DOMAIN" >/dev/null 2>&1; then
  fail "libvirt already has a domain named '$DOMAIN' (not the demo's); undefine it or rename it"
fi
# The protectable guest: direct kernel boot, one vCPU, an e1000 on the lab hosts' bridge,
# no disk (the guest runs from its initramfs). nohz=off: see README, "Running ftd by hand".
cat > "$DEMO/$DOMAIN.xml" <<XML
<domain type='qemu'>
  <name>$DOMAIN</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$GUEST/initrd.img</initrd>
    <cmdline>console=ttyS0 ftguest.ip=$FTLAB_VM_IP/$FTLAB_PREFIXLEN ftguest.workload=timer,chaos nohz=off</cmdline>
  </os>
  <devices>
    <interface type='bridge'>
      <mac address='52:54:00:12:34:56'/>
      <source bridge='$FTLAB_HOST_BRIDGE'/>
      <model type='e1000'/>
    </interface>
  </devices>
</domain>
XML
timeout 120 "${VIRSH[@]}" define "$DEMO/$DOMAIN.xml" | indent || fail "virsh define failed"
DOMAIN_DEFINED=1
timeout 30 "${VIRSH[@]}" list --all | indent "virsh | "

# Two "hypervisors" on this machine with the same config but for their addresses. Each has
# its own state and runtime dir; they share the channel key and the claim store (the lab's
# shared directory, as storage both hosts mount would be): when one host dies, the other
# goes live only after winning the next epoch there. No [vm] sections: VMs come from
# libvirt with `ftctl enable`, run by the QEMU in `qemu =`.
step "ftd configs: [node] only, symmetric; claim store on the lab's shared directory"
"$FTCTL" init-storage "$FTLAB_SHARED_DIR" | indent
head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > "$DEMO/channel.key"
chmod 600 "$DEMO/channel.key"
for host in hostA hostB; do
  mkdir -p "$DEMO/$host"
  if [ "$host" = hostA ]; then own=$FTLAB_A_FT_IP other=$FTLAB_B_FT_IP
  else own=$FTLAB_B_FT_IP other=$FTLAB_A_FT_IP; fi
  cat > "$DEMO/$host/ftd.conf" <<CONF
[node]
name = $host
state_dir = $DEMO/$host/state
run_dir = $DEMO/$host/run
listen = $own:$CHANNEL_PORT
peer = $other:$CHANNEL_PORT
channel_key_file = $DEMO/channel.key
shared_storage = $FTLAB_SHARED_DIR
qemu = $QEMU
CONF
done
sed "s|$DEMO/|\$DEMO/|g" "$DEMO/hostA/ftd.conf" | indent "hostA ftd.conf | "

step "starting ftd on hostB and hostA"
start_ftd() {  # host namespace; sets FTD_PID
  local host=$1 ns=$2
  ip netns exec "$ns" "$ROOT/$BUILD_DIR/ftd/ftd" --config "$DEMO/$host/ftd.conf" \
    > "$DEMO/$host/ftd.log" 2>&1 &
  FTD_PID=$!; PIDS=("$FTD_PID" "${PIDS[@]}")
  for _ in $(seq 1 300); do
    grep -q "logging channel: listening" "$DEMO/$host/ftd.log" && break
    kill -0 "$FTD_PID" 2>/dev/null || { cat "$DEMO/$host/ftd.log" >&2; fail "ftd on $host exited at start"; }
    sleep 0.1
  done
  grep -q "logging channel: listening" "$DEMO/$host/ftd.log" ||
    { tail -20 "$DEMO/$host/ftd.log" >&2; fail "ftd on $host did not listen within 30 s"; }
  echo "  $host: ftd pid $FTD_PID, $(grep -m1 -o 'logging channel: listening.*' "$DEMO/$host/ftd.log")"
}
start_ftd hostB "$FTLAB_NS_B"; B_PID=$FTD_PID
start_ftd hostA "$FTLAB_NS_A"; A_PID=$FTD_PID  # PIDS: hostA's first, stopped first
check_ftds() {
  kill -0 "$A_PID" 2>/dev/null || { tail -20 "$DEMO/hostA/ftd.log" >&2; fail "ftd on hostA exited"; }
  kill -0 "$B_PID" 2>/dev/null || { tail -20 "$DEMO/hostB/ftd.log" >&2; fail "ftd on hostB exited"; }
}

step "ftctl enable $DOMAIN on hostA: FT on for the libvirt domain (primary here, backup on hostB)"
ENABLE_MS=$(ms_now)
ftctl_a enable "$DOMAIN" > "$DEMO/enable.out" 2>&1 && rc=0 || rc=$?
indent "$ ftctl enable $DOMAIN | " < "$DEMO/enable.out"
[ "$rc" -eq 0 ] || { tail -20 "$DEMO/hostA/ftd.log" >&2; fail "ftctl enable exited $rc"; }
PROTECTED=
for _ in $(seq 1 900); do
  if [ "$(status_json "$SOCK_A" | field ft_state)" = VM_FT_STATE_PROTECTED ] &&
     [ "$(status_json "$SOCK_B" | field role)" = FT_ROLE_BACKUP ]; then PROTECTED=1; break; fi
  check_ftds; sleep 0.1
done
[ -n "$PROTECTED" ] || { ftctl_a status "$DOMAIN" >&2 || true; tail -20 "$DEMO/hostB/ftd.log" >&2
  fail "'$DOMAIN' was not protected by hostB within 90 s of ftctl enable"; }
echo "  protected $(( $(ms_now) - ENABLE_MS )) ms after ftctl enable: hostA's ft_state protected," \
  "hostB's role backup"
CONSOLE_A=$(status_json "$SOCK_A" | field console_log)
CONSOLE_B=$(status_json "$SOCK_B" | field console_log)
[ -n "$CONSOLE_A" ] && [ -n "$CONSOLE_B" ] || fail "ftctl status names no console log"
# The client needs the guest's services: wait until hostB's replay of the boot shows them.
for _ in $(seq 1 1800); do grep -q "ftguest: ready" "$CONSOLE_B" 2>/dev/null && break; check_ftds; sleep 0.1; done
grep -q "ftguest: ready" "$CONSOLE_B" 2>/dev/null ||
  { tail -20 "$DEMO/hostB/ftd.log" >&2; fail "the backup did not replay the guest's boot in 180 s"; }
echo "  hostA console | $(grep 'ftguest: ready' "$CONSOLE_A")"
echo "  hostB console | $(grep 'ftguest: ready' "$CONSOLE_B")   (replayed from hostA's log)"

step "ftctl list on both hosts (ftd's VMs, then libvirt's domains)"
ftctl_a list | indent "hostA | "
ftctl_b list | indent "hostB | "

step "the client ($FTLAB_CLIENT_IP) talks to the protected guest ($FTLAB_VM_IP) through hostA's output gate"
timeout 30 ip netns exec "$FTLAB_NS_C" ping -c 5 -i 0.2 "$FTLAB_VM_IP" | indent || fail "the client could not ping the guest"
timeout 60 ip netns exec "$FTLAB_NS_C" "$PROBE" stream --host "$FTLAB_VM_IP" --port 7000 --lines 200 --echoes 5 |
  indent "client | " || fail "the client's stream from the guest failed"
ftctl_a status "$DOMAIN" | grep -E "^(Role|FT state|Epoch|Peer|NIC|Output gate|Lag|Channel RTT):" | indent "hostA | "

step "failover drill: ftctl drill $DOMAIN on hostA while the client streams from the guest over one TCP connection"
# 750 lines at the guest's 20 ms beat: ~15 s, the drill ~3 s in. The probe checks every
# line's sequence number and CRC and its echoes: any gap, duplicate or corrupt byte fails it.
QEMU_A=$(status_json "$SOCK_A" | field qemu_pid)
QEMU_B_REPLAY=$(status_json "$SOCK_B" | field qemu_pid)
[ "${QEMU_A:-0}" -gt 0 ] && [ "${QEMU_B_REPLAY:-0}" -gt 0 ] || fail "no QEMU pid in ftctl status"
# hostB's console as its guest printed it, replayed and then live, followed from the first
# byte: the live QEMU opens console.log anew at go-live, which empties the replayed part.
tail -c +1 -F "$CONSOLE_B" > "$DEMO/hostB/console.followed" 2> "$DEMO/hostB/console.follow-err" &
FOLLOW_PID=$!; PIDS+=("$FOLLOW_PID")
in_ns "$FTLAB_NS_C" "$PROBE" stream --host "$FTLAB_VM_IP" --port 7000 --lines 750 --echoes 5 \
  > "$DEMO/probe.log" 2>&1 &
PROBE_PID=$!; PIDS=("$PROBE_PID" "${PIDS[@]}")
sleep 3
kill -0 "$PROBE_PID" 2>/dev/null || { cat "$DEMO/probe.log" >&2; fail "the probe ended before the drill"; }
echo "  $(date +%T.%3N) \$ ftctl drill $DOMAIN   (hostA's QEMU pid $QEMU_A is killed for real)"
DRILL_MS=$(ms_now)
ftctl_a drill "$DOMAIN" > "$DEMO/drill.out" 2>&1 && rc=0 || rc=$?
indent "drill | " < "$DEMO/drill.out"
[ "$rc" -eq 0 ] || { tail -30 "$DEMO/hostB/ftd.log" >&2; fail "ftctl drill exited $rc"; }
echo "  $(date +%T.%3N) ftctl drill returned after $(( $(ms_now) - DRILL_MS )) ms"
# hostA's console as its guest left it: once hostB re-protects the VM (in a few seconds,
# reprotect = auto), hostA's new backup replays into that file from the snapshot on.
cp "$CONSOLE_A" "$DEMO/hostA/console.at-drill"
J_LIVE=$(status_json "$SOCK_B")  # hostB's go-live steps, before a re-protection replaces its copy
for _ in $(seq 1 50); do kill -0 "$QEMU_A" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$QEMU_A" 2>/dev/null; then fail "the drill left hostA's QEMU (pid $QEMU_A) running"; fi
for _ in $(seq 1 600); do kill -0 "$PROBE_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PROBE_PID" 2>/dev/null && { cat "$DEMO/probe.log" >&2; fail "the client's stream did not end within 60 s"; }
wait "$PROBE_PID" && rc=0 || rc=$?
forget "$PROBE_PID"
indent "client | " < "$DEMO/probe.log"
[ "$rc" -eq 0 ] || { tail -30 "$DEMO/hostB/ftd.log" >&2; fail "the client's stream failed across the drill (exit $rc)"; }
J=$(status_json "$SOCK_B")
ROLE_B=$(field role <<<"$J"); EPOCH_B=$(field epoch <<<"$J"); STATE_B=$(field ft_state <<<"$J")
QEMU_B=$(field qemu_pid <<<"$J")
[ "$ROLE_B" = FT_ROLE_PRIMARY ] && [ "$EPOCH_B" = 2 ] ||
  fail "after the drill hostB is role '$ROLE_B', epoch '$EPOCH_B' (expected primary, epoch 2)"
ftctl_b status "$DOMAIN" | grep -E "^(Role|FT state|FT note|Epoch|NIC|Failover):|^  " | indent "hostB | "
ftctl_a status "$DOMAIN" | grep -E "^(State|Role|FT state|FT note|Epoch):" | indent "hostA | "
# The drill's figures: from ftctl's report (kill -> live on hostB) and hostB's own steps.
LIVE_MS=$(grep -m1 -o 'live on hostB *+[0-9]*' "$DEMO/drill.out" | grep -o '[0-9]*$' || true)
LOST_NS=$(field peer_lost_ns <<<"$J_LIVE"); LIVE_NS=$(field live_ns <<<"$J_LIVE")
ON_B_MS=$(( (LIVE_NS - LOST_NS) / 1000000 ))
[ -n "$LIVE_MS" ] || fail "ftctl drill's report has no 'live on hostB' line"
echo "  drill: hostB live ${LIVE_MS} ms after hostA's QEMU was killed (${ON_B_MS} ms of it hostB's" \
  "go-live after declaring hostA lost); role primary, epoch 2, $STATE_B; the client's TCP connection survived"

step "consoles after the drill: equal up to where hostA's log stopped reaching hostB"
# hostB went on live, and hostA may have printed bytes whose log never left it: the two can
# no longer be byte-identical, but hostB's must contain all of hostA's but its last moments.
sleep 0.5; kill -TERM "$FOLLOW_PID"; wait "$FOLLOW_PID" 2>/dev/null || true; forget "$FOLLOW_PID"
FOLLOWED_B="$DEMO/hostB/console.followed"
CONSOLE_A="$DEMO/hostA/console.at-drill"
if grep -q "truncated" "$DEMO/hostB/console.follow-err"; then
  echo "  note: hostB's console.log was emptied at go-live (now $(wc -c < "$CONSOLE_B") bytes, the live part" \
    "only); compared here is hostB's whole console as followed from its first byte"
fi
SIZE_A=$(wc -c < "$CONSOLE_A"); SIZE_B=$(wc -c < "$FOLLOWED_B")
if CMP=$(cmp -- "$CONSOLE_A" "$FOLLOWED_B" 2>&1); then COMMON=$SIZE_A
elif [[ $CMP =~ differ:\ (byte|char)\ ([0-9]+) ]]; then COMMON=$(( BASH_REMATCH[2] - 1 ))
elif [[ $CMP == *EOF* ]]; then COMMON=$(( SIZE_A < SIZE_B ? SIZE_A : SIZE_B ))
else fail "cmp failed: $CMP"; fi
echo "  hostA console: $SIZE_A bytes; hostB console: $SIZE_B bytes"
echo "  common prefix: $COMMON bytes; hostA printed $(( SIZE_A - COMMON )) bytes beyond it," \
  "hostB's goes on for $(( SIZE_B - COMMON )) more (the guest, live on hostB)"
if [ "$COMMON" -lt $(( SIZE_A - 4096 )) ]; then
  echo "$CMP" >&2; fail "the consoles diverge more than 4096 bytes before the end of hostA's"
fi

step "the client pings the guest, now served by hostB"
timeout 30 ip netns exec "$FTLAB_NS_C" ping -c 5 -i 0.2 "$FTLAB_VM_IP" | indent ||
  fail "the client could not ping the guest on hostB"

# Waits (at most 180 s) until $1's ftd reports the VM protected and its re-protection done.
wait_reprotected() {
  local sock=$1 j phase state
  for _ in $(seq 1 900); do
    j=$(status_json "$sock")
    state=$(field ft_state <<<"$j"); phase=$(field phase <<<"$j")
    [ "$state" = VM_FT_STATE_PROTECTED ] && [ "$phase" = protected ] && return 0
    [ "$phase" = failed ] && echo "  re-protection attempt failed: $(field note <<<"$j"); ftd tries again" >&2
    sleep 0.2
  done
  return 1
}

step "re-protection: hostB gives the running VM a new backup on hostA by itself (reprotect = auto)"
# One TCP connection from here through the re-protection and a second drill: 6000 lines at
# the guest's 20 ms beat (about 2 minutes), every sequence number, CRC and echo checked.
in_ns "$FTLAB_NS_C" "$PROBE" stream --host "$FTLAB_VM_IP" --port 7000 --lines 6000 --echoes 20 \
  --timeout-s 300 > "$DEMO/probe2.log" 2>&1 &
PROBE_PID=$!; PIDS=("$PROBE_PID" "${PIDS[@]}")
RP_MS=$(ms_now)
wait_reprotected "$SOCK_B" || { tail -30 "$DEMO/hostB/ftd.log" >&2; fail "hostB did not re-protect the VM within 180 s"; }
echo "  protected again $(( $(ms_now) - RP_MS )) ms after hostB's copy went live (hostA's ftd kept running)"
ftctl_b status "$DOMAIN" | grep -E "^(Role|FT state|Epoch|Peer|Re-protect):" | indent "hostB | "
ftctl_a status "$DOMAIN" | grep -E "^(Role|FT state|Epoch|Peer):" | indent "hostA | "
J=$(status_json "$SOCK_B")
PAUSE_MS=$(field pause_ms <<<"$J"); SHIPPED=$(( $(field bytes_total <<<"$J") / 1048576 ))
QEMU_B2=$(field qemu_pid <<<"$J")
[ "$(field role <<<"$(status_json "$SOCK_A")")" = FT_ROLE_BACKUP ] || fail "hostA is not the backup after the re-protection"
kill -0 "$PROBE_PID" 2>/dev/null || { cat "$DEMO/probe2.log" >&2; fail "the client's stream ended during the re-protection"; }

step "second drill: ftctl drill $DOMAIN on hostB; hostA, the new backup, takes over"
QEMU_A2=$(status_json "$SOCK_A" | field qemu_pid)
ftctl_b drill "$DOMAIN" > "$DEMO/drill2.out" 2>&1 && rc=0 || rc=$?
indent "drill | " < "$DEMO/drill2.out"
[ "$rc" -eq 0 ] || { tail -30 "$DEMO/hostA/ftd.log" >&2; fail "the second ftctl drill exited $rc"; }
LIVE2_MS=$(grep -m1 -o 'live on hostA *+[0-9]*' "$DEMO/drill2.out" | grep -o '[0-9]*$' || true)
[ -n "$LIVE2_MS" ] || fail "the second drill's report has no 'live on hostA' line"
J=$(status_json "$SOCK_A")
[ "$(field role <<<"$J")" = FT_ROLE_PRIMARY ] && [ "$(field epoch <<<"$J")" = 3 ] ||
  fail "after the second drill hostA is role '$(field role <<<"$J")', epoch '$(field epoch <<<"$J")' (expected primary, epoch 3)"
QEMU_A3=$(field qemu_pid <<<"$J")
for _ in $(seq 1 1500); do kill -0 "$PROBE_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PROBE_PID" 2>/dev/null && { cat "$DEMO/probe2.log" >&2; fail "the client's stream did not end within 150 s"; }
wait "$PROBE_PID" && rc=0 || rc=$?
forget "$PROBE_PID"
indent "client | " < "$DEMO/probe2.log"
[ "$rc" -eq 0 ] || { tail -30 "$DEMO/hostA/ftd.log" >&2; fail "the client's stream failed across the re-protection and the second drill (exit $rc)"; }
echo "  the client's one TCP connection carried on through the re-protection (guest paused ${PAUSE_MS} ms," \
  "${SHIPPED} MiB shipped) and the second failover (hostA live in ${LIVE2_MS} ms, epoch 3)"

step "hostA re-protects the VM in turn (hostB becomes the backup), then ftctl disable on hostA turns FT off"
wait_reprotected "$SOCK_A" || { tail -30 "$DEMO/hostA/ftd.log" >&2; fail "hostA did not re-protect the VM within 180 s"; }
ftctl_a status "$DOMAIN" | grep -E "^(Role|FT state|Epoch|Re-protect):" | indent "hostA | "
QEMU_A4=$(status_json "$SOCK_A" | field qemu_pid)
timeout 120 "$FTCTL" --socket "$SOCK_A" disable "$DOMAIN" > "$DEMO/disable.out" 2>&1 && rc=0 || rc=$?
indent "hostA \$ ftctl disable $DOMAIN | " < "$DEMO/disable.out"
[ "$rc" -eq 0 ] || { tail -20 "$DEMO/hostA/ftd.log" >&2; fail "ftctl disable on hostA exited $rc"; }
ftctl_a list | indent "hostA | "
ftctl_b list | indent "hostB | "
[ "$(status_json "$SOCK_A" | field qemu_pid)" = "$QEMU_A4" ] || fail "hostA's QEMU changed at disable"
timeout 30 ip netns exec "$FTLAB_NS_C" ping -c 3 -i 0.2 "$FTLAB_VM_IP" > /dev/null ||
  fail "the guest stopped answering after ftctl disable"
echo "  the guest still answers the client from hostA, unprotected (FT off)"

step "stopping both ftds cleanly (SIGTERM)"
for host in hostA hostB; do
  if [ "$host" = hostA ]; then pid=$A_PID; else pid=$B_PID; fi
  kill -TERM "$pid"
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then fail "ftd on $host (pid $pid) did not stop within 60 s of SIGTERM"; fi
  wait "$pid" && rc=0 || rc=$?
  forget "$pid"
  [ "$rc" -eq 0 ] || { tail "$DEMO/$host/ftd.log" >&2; fail "ftd on $host exited with $rc"; }
  if [ -e "$DEMO/$host/run" ]; then fail "runtime dir of $host left behind"; fi
  echo "  ftd on $host exited 0; its runtime dir is removed"
done
for pid in "$QEMU_A" "$QEMU_B_REPLAY" "$QEMU_B" "$QEMU_B2" "$QEMU_A2" "$QEMU_A3" "$QEMU_A4"; do
  if kill -0 "$pid" 2>/dev/null; then fail "QEMU pid $pid still running"; fi
done
if LEFT=$(pgrep -af -- "$DEMO/"); then echo "$LEFT" >&2; fail "processes of the demo left running"; fi
echo "  no QEMU and no process of the demo left"

step "tearing down: libvirt domain, lab$([ "$LIBVIRTD_STARTED" = 1 ] && echo ", libvirtd")"
timeout 30 "${VIRSH[@]}" undefine "$DOMAIN" | indent || fail "virsh undefine $DOMAIN failed"
DOMAIN_DEFINED=0
scripts/lab.sh down | indent
LAB_UP=0
if [ "$LIBVIRTD_STARTED" = 1 ]; then
  scripts/libvirtd.sh stop | indent || fail "scripts/libvirtd.sh stop failed"
  LIBVIRTD_STARTED=0
else
  echo "  libvirtd left running: the demo did not start it"
fi

step "main job OK in $(( $(date +%s) - T0 )) s ($(( $(date +%s) - T_BUILT )) s after the build): libvirt domain $DOMAIN protected with ftctl enable (hostA primary, hostB backup); the client talked to it through hostA's output gate; ftctl drill killed hostA's copy and hostB was live in ${LIVE_MS} ms (${ON_B_MS} ms after declaring hostA lost), epoch 2, the client's TCP connection intact; hostB re-protected the running VM by itself (paused ${PAUSE_MS} ms, ${SHIPPED} MiB shipped) and a second drill made hostA live in ${LIVE2_MS} ms, epoch 3, the client's second connection intact through both; FT disabled and both ftds stopped cleanly"
