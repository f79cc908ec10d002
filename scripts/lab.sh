#!/usr/bin/env bash
# The network lab: two "hypervisors" (A and B), a switch and a client, each its own network
# namespace on this machine, for the integration tests and the demo. docs/lab.md has the
# topology. Run as root. Everything it creates carries the prefix $FTLAB (default ftlab);
# it never touches the root namespace's interfaces and never kills a process.
#
#   scripts/lab.sh up|down|status|env
#   scripts/lab.sh cut-host a|b          restore-host a|b
#   scripts/lab.sh cut-channel           restore-channel
#   scripts/lab.sh exec a|b|c|sw CMD...
set -Eeuo pipefail
trap 'echo "lab: failed (line $LINENO): $BASH_COMMAND" >&2' ERR

FTLAB=${FTLAB:-ftlab}
FTLAB_DIR=${FTLAB_DIR:-/tmp/$FTLAB}

usage() {
  cat <<EOF
usage: $0 COMMAND            (env FTLAB=prefix, default ftlab; FTLAB_DIR, default /tmp/\$FTLAB)
  up                      build the lab, or repair a half-built one; also undoes any cut
  down                    remove the namespaces and the lab's directory (idempotent)
  status                  show namespaces, links, addresses; exit 0 if complete, 1 if not
  cut-host a|b            that host's switch ports (br-vm and br-ft) down: its links are cut
  restore-host a|b        ...and up again
  cut-channel             a-ft and b-ft down: the logging channel is cut, the VM network stays
  restore-channel         ...and up again
  exec a|b|c|sw CMD...    run CMD in that namespace (ip netns exec; CMD keeps the PID)
  env                     print the lab's names, addresses and paths as KEY=VALUE lines
EOF
}

die() { echo "lab: $*" >&2; exit 1; }
bad_usage() { echo "lab: $*" >&2; usage >&2; exit 2; }

# The prefix names namespaces ("$FTLAB-sw" is the longest): at most 15 characters in all.
[[ $FTLAB =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,11}$ ]] ||
  die "FTLAB='$FTLAB': use 1-12 letters, digits, '-' or '_' (namespace names stay <= 15 chars)"
[[ $FTLAB_DIR == /* && $FTLAB_DIR != / && $FTLAB_DIR != *//* && $FTLAB_DIR != */ ]] ||
  die "FTLAB_DIR='$FTLAB_DIR': must be an absolute path (not /, no trailing slash)"

NS_SW=$FTLAB-sw
NS_A=$FTLAB-a
NS_B=$FTLAB-b
NS_C=$FTLAB-c
SHARED_DIR=$FTLAB_DIR/shared
# Written into FTLAB_DIR when this script created it: only then does `down` remove it whole.
MARKER=$FTLAB_DIR/.created-by-ftlab

VM_NET=10.77.0.0/24
FT_NET=10.78.0.0/24
A_IP=10.77.0.1
B_IP=10.77.0.2
A_FT_IP=10.78.0.1
B_FT_IP=10.78.0.2
C_IP=10.77.0.100
VM_IP=10.77.0.10  # the guest's; configured inside the VM, never by the lab
# Bridges age learned MACs after 1 s (centiseconds; software bridges take any value, and a
# value under about 1 cs reads back as 0, where every frame floods like a hub). A moved VM
# announces itself with a gratuitous ARP, which relearns its MAC at once; ageing is a backstop.
AGEING_CS=100

# The topology, one link a row: short namespace, name, kind, master, peer (short ns:name),
# IPv4 address. `up` builds from it and `status` checks against it.
LINKS=(
  "sw br-vm bridge - - -"
  "sw br-ft bridge - - -"
  "a  br0    bridge - -         $A_IP/24"
  "a  uplink veth   br0 sw:a-vm -"
  "a  ft0    veth   -   sw:a-ft $A_FT_IP/24"
  "b  br0    bridge - -         $B_IP/24"
  "b  uplink veth   br0 sw:b-vm -"
  "b  ft0    veth   -   sw:b-ft $B_FT_IP/24"
  "c  eth0   veth   -   sw:c-vm $C_IP/24"
  "sw a-vm   veth   br-vm a:uplink -"
  "sw b-vm   veth   br-vm b:uplink -"
  "sw c-vm   veth   br-vm c:eth0   -"
  "sw a-ft   veth   br-ft a:ft0    -"
  "sw b-ft   veth   br-ft b:ft0    -"
)
# Switch ports that cut-host/cut-channel take down: down is a lab state, not a fault.
CUTTABLE=" a-vm a-ft b-vm b-ft "

ns_name() {
  case $1 in
    sw) echo "$NS_SW" ;; a) echo "$NS_A" ;; b) echo "$NS_B" ;; c) echo "$NS_C" ;;
    *) return 1 ;;
  esac
}
ALL_NS=("$NS_SW" "$NS_A" "$NS_B" "$NS_C")

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (it creates network namespaces)"
  command -v ip >/dev/null 2>&1 || die "'ip' not found: install iproute2 (scripts/install-deps.sh)"
}

ns_exists() {
  local l
  while read -r l _; do [ "$l" = "$1" ] && return 0; done < <(ip netns list 2>/dev/null)
  return 1
}

# A bridge that has an address gets a fixed MAC derived from it (02:00 + the IPv4 in hex):
# otherwise the bridge takes its lowest port's MAC, which changes when ftd attaches a TAP,
# and every neighbour's ARP entry for the host goes stale.
mac_for() {
  local a b c d
  IFS=. read -r a b c d <<<"${1%/*}"
  printf '02:00:%02x:%02x:%02x:%02x' "$a" "$b" "$c" "$d"
}

# ---------------------------------------------------------------------------------------
# Checking. check_lab fills PROBLEMS (one human-readable line each) and CUT (ports down).

PROBLEMS=()
CUT=()

link_line() { ip -n "$1" -o link show dev "$2" 2>/dev/null; }
link_ifindex() { local l; l=$(link_line "$1" "$2") || return 1; echo "${l%%:*}"; }

check_lab() {
  PROBLEMS=()
  CUT=()
  local short ns missing_ns=" "
  for short in sw a b c; do
    ns=$(ns_name "$short")
    if ! ns_exists "$ns"; then
      PROBLEMS+=("namespace $ns missing")
      missing_ns+="$short "
      continue
    fi
    [[ $(link_line "$ns" lo) =~ [\<,]UP[,\>] ]] || PROBLEMS+=("$ns: lo is down")
    if [ -d /proc/sys/net/ipv6 ] &&
      [ "$(ip netns exec "$ns" cat /proc/sys/net/ipv6/conf/all/disable_ipv6)" != 1 ]; then
      PROBLEMS+=("$ns: IPv6 not disabled")
    fi
  done

  local row name kind master peer addr line pns pname
  for row in "${LINKS[@]}"; do
    read -r short name kind master peer addr <<<"$row"
    [[ $missing_ns == *" $short "* ]] && continue
    ns=$(ns_name "$short")
    if ! line=$(link_line "$ns" "$name"); then
      PROBLEMS+=("$ns: $name missing")
      continue
    fi
    is_kind "$ns" "$name" "$kind" || PROBLEMS+=("$ns: $name is not a $kind")
    if [ "$master" != - ] && [[ $line != *" master $master "* ]]; then
      PROBLEMS+=("$ns: $name is not a port of $master")
    fi
    if [ "$peer" != - ]; then
      pns=$(ns_name "${peer%%:*}")
      pname=${peer#*:}
      veth_pair_ok "$ns" "$name" "$pns" "$pname" ||
        PROBLEMS+=("$ns: $name is not the peer of $pname in $pns")
    fi
    if [ "$addr" != - ] && [[ $(ip -n "$ns" -o -4 addr show dev "$name") != *" inet $addr "* ]]; then
      PROBLEMS+=("$ns: $name lacks address $addr")
    fi
    if [ "$kind" = bridge ]; then
      local d
      d=$(ip -n "$ns" -o -d link show dev "$name")
      [[ $d == *" stp_state 0 "* ]] || PROBLEMS+=("$ns: $name has STP on")
      [[ $d == *" forward_delay 0 "* ]] || PROBLEMS+=("$ns: $name has a forward delay")
      [[ $d == *" ageing_time $AGEING_CS "* ]] || PROBLEMS+=("$ns: $name ageing_time is not $AGEING_CS")
    fi
    if ! [[ $line =~ [\<,]UP[,\>] ]]; then
      if [ "$short" = sw ] && [[ $CUTTABLE == *" $name "* ]]; then
        CUT+=("$name")
      else
        PROBLEMS+=("$ns: $name is down")
      fi
    fi
  done

  if [ -L "$SHARED_DIR" ] || [ ! -d "$SHARED_DIR" ]; then
    PROBLEMS+=("shared directory $SHARED_DIR missing")
  elif [ "$(stat -c %a "$SHARED_DIR")" != 700 ]; then
    PROBLEMS+=("shared directory $SHARED_DIR is not mode 0700")
  fi
  [ ${#PROBLEMS[@]} -eq 0 ]
}

# ---------------------------------------------------------------------------------------
# Building.

remove_namespaces() {
  local ns pids
  for ns in "${ALL_NS[@]}"; do
    ns_exists "$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
    if [ -n "${pids// /}" ]; then
      # Not ours to kill: the namespace (and its links) lives on, unnamed, until they exit.
      echo "lab: warning: processes still inside $ns: ${pids% } (not killed)" >&2
    fi
    ip netns del "$ns"
  done
}

# Creates what is missing and fixes what is wrong, leaving healthy parts alone: an ftd
# already running inside a host namespace keeps its namespace and its TAP on br0.
ensure_namespace() {
  local ns=$1
  ns_exists "$ns" ||
    ip netns add "$ns" || die "cannot create network namespace $ns (ip netns needs CAP_SYS_ADMIN)"
  # IPv6 off before any link exists, so new links inherit it: no router solicitations,
  # no DAD, no MLD reports on the lab's wires.
  if [ -d /proc/sys/net/ipv6 ]; then
    ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 &&
                                echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6'
  fi
  ip -n "$ns" link set lo up
}

is_kind() { [ -n "$(ip -n "$1" -o link show dev "$2" type "$3" 2>/dev/null)" ]; }

# veth_pair_ok NS NAME PEER_NS PEER_NAME: both ends exist and are each other's peer.
veth_pair_ok() {
  local line pidx
  line=$(link_line "$1" "$2") && is_kind "$1" "$2" veth || return 1
  pidx=$(link_ifindex "$3" "$4") || return 1
  [[ $line == *"@if$pidx:"* && $line == *"link-netns $3"* ]]
}

converge_lab() {
  local short ns row name kind master peer addr pns pname
  for short in sw a b c; do ensure_namespace "$(ns_name "$short")"; done
  for row in "${LINKS[@]}"; do
    read -r short name kind master peer addr <<<"$row"
    ns=$(ns_name "$short")
    if [ "$kind" = bridge ]; then
      if ! is_kind "$ns" "$name" bridge; then
        ip -n "$ns" link del dev "$name" 2>/dev/null || true
        ip -n "$ns" link add "$name" type bridge
      fi
      # STP off first: the kernel refuses forward_delay 0 (below 2 s) while STP is on.
      ip -n "$ns" link set dev "$name" type bridge stp_state 0
      ip -n "$ns" link set dev "$name" type bridge forward_delay 0 ageing_time "$AGEING_CS"
      [ "$addr" = - ] || ip -n "$ns" link set dev "$name" address "$(mac_for "$addr")"
    elif [ "$short" != sw ]; then  # every pair has exactly one end outside the switch
      pns=$(ns_name "${peer%%:*}")
      pname=${peer#*:}
      if ! veth_pair_ok "$ns" "$name" "$pns" "$pname"; then
        ip -n "$ns" link del dev "$name" 2>/dev/null || true
        ip -n "$pns" link del dev "$pname" 2>/dev/null || true
        # Both ends are born inside their namespaces: nothing ever appears in the root one.
        ip link add "$name" netns "$ns" type veth peer name "$pname" netns "$pns"
      fi
    fi
  done
  for row in "${LINKS[@]}"; do
    read -r short name kind master peer addr <<<"$row"
    ns=$(ns_name "$short")
    [ "$master" = - ] || ip -n "$ns" link set dev "$name" master "$master"
    [ "$addr" = - ] || ip -n "$ns" addr replace "$addr" dev "$name"
    ip -n "$ns" link set dev "$name" up
  done
}

ensure_dirs() {
  if [ -L "$FTLAB_DIR" ]; then die "$FTLAB_DIR is a symlink; refusing to use it"; fi
  if [ ! -e "$FTLAB_DIR" ]; then
    mkdir -p "$FTLAB_DIR"
    chmod 0755 "$FTLAB_DIR"
    echo "$FTLAB" >"$MARKER"
  fi
  [ -d "$FTLAB_DIR" ] || die "$FTLAB_DIR exists and is not a directory"
  [ "$(stat -c %u "$FTLAB_DIR")" = 0 ] || die "$FTLAB_DIR is not owned by root; refusing to use it"
  if [ -L "$SHARED_DIR" ]; then die "$SHARED_DIR is a symlink; refusing to use it"; fi
  [ -d "$SHARED_DIR" ] || mkdir -m 0700 "$SHARED_DIR"
  chmod 0700 "$SHARED_DIR"
}

set_ports() {  # set_ports up|down NAME... (switch ports)
  local state=$1 name
  shift
  ns_exists "$NS_SW" || die "the lab '$FTLAB' is not up (no namespace $NS_SW); run: $0 up"
  for name in "$@"; do
    link_line "$NS_SW" "$name" >/dev/null || die "$NS_SW: port $name missing; run: $0 up"
    ip -n "$NS_SW" link set dev "$name" "$state"
  done
}

# ---------------------------------------------------------------------------------------
# Commands.

cmd_up() {
  need_root
  ensure_dirs
  local what="already up"
  if ! check_lab; then
    what=built
    local ns
    for ns in "${ALL_NS[@]}"; do
      if ns_exists "$ns"; then
        what=repaired
        echo "lab: $FTLAB is incomplete, repairing:" >&2
        printf 'lab:   %s\n' "${PROBLEMS[@]}" >&2
        break
      fi
    done
  fi
  converge_lab  # also undoes any cut
  check_lab || { printf 'lab: still incomplete: %s\n' "${PROBLEMS[@]}" >&2; exit 1; }
  echo "lab $FTLAB $what: hosts $NS_A ($A_IP, $A_FT_IP) and $NS_B ($B_IP, $B_FT_IP)," \
    "client $NS_C ($C_IP), switch $NS_SW; shared dir $SHARED_DIR"
}

cmd_down() {
  need_root
  remove_namespaces
  if [ -f "$MARKER" ] && [ ! -L "$FTLAB_DIR" ] && [ "$(cat "$MARKER")" = "$FTLAB" ]; then
    rm -rf -- "$FTLAB_DIR"
  elif [ -d "$SHARED_DIR" ] && [ ! -L "$SHARED_DIR" ]; then
    rm -rf -- "$SHARED_DIR"
  fi
  echo "lab $FTLAB down"
}

cmd_status() {
  need_root
  local complete=0 ns short l name flags state master peerns addrs kinds
  check_lab && complete=1
  for short in sw a b c; do
    ns=$(ns_name "$short")
    if ! ns_exists "$ns"; then
      printf '%s: absent\n' "$ns"
      continue
    fi
    printf '%s:\n' "$ns"
    kinds=" $(ip -n "$ns" -o link show type bridge | awk -F': ' '{print $2 "=bridge"}' | tr '\n' ' ')"
    kinds+="$(ip -n "$ns" -o link show type veth | awk -F': ' '{sub(/@.*/, "", $2); print $2 "=veth"}' | tr '\n' ' ')"
    kinds+="$(ip -n "$ns" -o link show type tun | awk -F': ' '{print $2 "=tap"}' | tr '\n' ' ')"
    while IFS= read -r l; do
      name=${l#*: }
      name=${name%%:*}
      flags=${l#*<}
      flags=${flags%%>*}
      if [[ ,$flags, != *,UP,* ]]; then state=down
      elif [[ ,$flags, == *,LOWER_UP,* ]]; then state=up
      else state=no-carrier
      fi
      master=-
      [[ $l =~ \ master\ ([^ ]+) ]] && master=${BASH_REMATCH[1]}
      peerns=-
      [[ $l =~ \ link-netns\ ([^ ]+) ]] && peerns=${BASH_REMATCH[1]}
      addrs=$(ip -n "$ns" -o -4 addr show dev "${name%@*}" | awk '{printf "%s ", $4}')
      local kind=-
      [[ $kinds =~ \ ${name%@*}=([a-z]+) ]] && kind=${BASH_REMATCH[1]}
      [ "${name%@*}" = lo ] && kind=loopback
      printf '  %-12s %-8s %-10s master %-6s peer-ns %-14s %s\n' \
        "${name%@*}" "$kind" "$state" "$master" "$peerns" "${addrs:--}"
    done < <(ip -n "$ns" -o link show)
  done
  if [ -d "$SHARED_DIR" ]; then
    printf 'shared dir: %s (mode %s)\n' "$SHARED_DIR" "$(stat -c %a "$SHARED_DIR")"
  else
    printf 'shared dir: %s absent\n' "$SHARED_DIR"
  fi
  [ ${#CUT[@]} -eq 0 ] || printf 'cut (switch ports down): %s\n' "${CUT[*]}"
  if [ "$complete" = 1 ]; then
    echo "lab $FTLAB: complete"
    return 0
  fi
  echo "lab $FTLAB: incomplete (run: $0 up):"
  printf '  %s\n' "${PROBLEMS[@]}"
  return 1
}

cmd_env() {
  local kv
  for kv in "FTLAB=$FTLAB" "FTLAB_DIR=$FTLAB_DIR" "FTLAB_SHARED_DIR=$SHARED_DIR" \
    "FTLAB_NS_SW=$NS_SW" "FTLAB_NS_A=$NS_A" "FTLAB_NS_B=$NS_B" "FTLAB_NS_C=$NS_C" \
    "FTLAB_VM_NET=$VM_NET" "FTLAB_FT_NET=$FT_NET" "FTLAB_PREFIXLEN=24" \
    "FTLAB_A_IP=$A_IP" "FTLAB_B_IP=$B_IP" "FTLAB_A_FT_IP=$A_FT_IP" "FTLAB_B_FT_IP=$B_FT_IP" \
    "FTLAB_CLIENT_IP=$C_IP" "FTLAB_VM_IP=$VM_IP" "FTLAB_HOST_BRIDGE=br0" "FTLAB_FT_DEV=ft0"; do
    printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"
  done
}

host_arg() {
  case ${1:-} in
    a | b) echo "$1" ;;
    *) bad_usage "expected host a or b, got '${1:-}'" ;;
  esac
}

[ $# -ge 1 ] || bad_usage "missing command"
cmd=$1
shift
case $cmd in
  up | down | status | cut-channel | restore-channel | env)
    [ $# -eq 0 ] || bad_usage "$cmd takes no arguments"
    ;;
esac
case $cmd in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status || exit 1 ;;
  env) cmd_env ;;
  cut-host | restore-host)
    [ $# -eq 1 ] || bad_usage "$cmd takes one host: a or b"
    h=$(host_arg "$1") || exit 2
    need_root
    if [ "$cmd" = cut-host ]; then
      set_ports down "$h-vm" "$h-ft"
      echo "lab: host $h cut ($NS_SW: $h-vm, $h-ft down)"
    else
      set_ports up "$h-vm" "$h-ft"
      echo "lab: host $h restored"
    fi
    ;;
  cut-channel)
    need_root
    set_ports down a-ft b-ft
    echo "lab: logging channel cut ($NS_SW: a-ft, b-ft down)"
    ;;
  restore-channel)
    need_root
    set_ports up a-ft b-ft
    echo "lab: logging channel restored"
    ;;
  exec)
    [ $# -ge 2 ] || bad_usage "exec takes a namespace (a, b, c or sw) and a command"
    ns=$(ns_name "$1") || bad_usage "unknown namespace '$1' (a, b, c or sw)"
    shift
    need_root
    ns_exists "$ns" || die "namespace $ns does not exist; run: $0 up"
    exec ip netns exec "$ns" "$@"
    ;;
  -h | --help | help) usage ;;
  *) bad_usage "unknown command '$cmd'" ;;
esac
