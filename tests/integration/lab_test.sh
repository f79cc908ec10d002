#!/usr/bin/env bash
# The network lab (scripts/lab.sh) does what the tests and the demo rely on: it comes up
# (twice), the client reaches both hosts, the hosts reach each other over the logging
# channel, cuts cut what they say and nothing more, a broken lab is repaired, and `down`
# leaves nothing behind. Exit 77 (skipped) without root or network namespaces; under CI=true
# that is a failure (exit 1): a CI run must not pass without running the lab.
set -uo pipefail

LAB=${LAB_SH:-$(cd "$(dirname "$0")/../.." && pwd)/scripts/lab.sh}
# A prefix of our own per run ("-sw" makes 15 chars at most), so parallel runs never meet.
export FTLAB="ftlt$(($$ % 10000000))"
export FTLAB_DIR="/tmp/$FTLAB"
unset LAB_SH

skip() {
  if [ "${CI:-}" = true ]; then echo "FAIL (CI=true, may not skip): $*"; exit 1; fi
  echo "SKIP: $*"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null 2>&1 || skip "no 'ip' (iproute2)"
[ ! -e "$FTLAB_DIR" ] || skip "$FTLAB_DIR exists already; not ours to use"
if ! ip netns add "$FTLAB-p" 2>/dev/null; then skip "cannot create network namespaces"; fi
ip netns del "$FTLAB-p"

if command -v ping >/dev/null 2>&1; then PING=(ping); else PING=(busybox ping); fi

cleanup() { timeout 30 "$LAB" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 1' INT TERM

# shellcheck source=tests/integration/check.sh
source "$(dirname "$0")/check.sh"
lab() { timeout 30 "$LAB" "$@"; }
quiet() { "$@" >/dev/null 2>&1; }
# reach NS ADDR: a few tries, as a person would (the first probe may wait on ARP).
reach() {
  local _
  for _ in 1 2 3; do
    quiet lab exec "$1" "${PING[@]}" -c1 -W1 "$2" && return 0
  done
  return 1
}
no_reach() { ! quiet lab exec "$1" "${PING[@]}" -c1 -W1 "$2"; }
root_links() { ip -o link show | awk -F': ' '{print $2}' | sort; }
lab_namespaces() { ip netns list | awk '{print $1}' | grep -E "^$FTLAB-" || true; }

roots_before=$(root_links)
check "up builds the lab" quiet lab up
check "up again on a complete lab succeeds" quiet lab up
check "status says complete (exit 0)" quiet lab status
check "the root namespace gained no interface" [ "$(root_links)" = "$roots_before" ]

eval "$("$LAB" env)"
check "env names the lab's namespaces" [ "$FTLAB_NS_A" = "$FTLAB-a" ]
check "shared dir exists, mode 0700" [ "$(stat -c %a "$FTLAB_SHARED_DIR" 2>/dev/null)" = 700 ]

check "client reaches host A ($FTLAB_A_IP)" reach c "$FTLAB_A_IP"
check "client reaches host B ($FTLAB_B_IP)" reach c "$FTLAB_B_IP"
check "A reaches B over the channel ($FTLAB_B_FT_IP)" reach a "$FTLAB_B_FT_IP"

check "cut-channel" quiet lab cut-channel
check "after cut-channel A cannot reach $FTLAB_B_FT_IP" no_reach a "$FTLAB_B_FT_IP"
check "after cut-channel the client still reaches A" reach c "$FTLAB_A_IP"
check "after cut-channel the client still reaches B" reach c "$FTLAB_B_IP"
check "restore-channel" quiet lab restore-channel
check "after restore-channel A reaches $FTLAB_B_FT_IP" reach a "$FTLAB_B_FT_IP"

check "cut-host a" quiet lab cut-host a
check "after cut-host a the client cannot reach A" no_reach c "$FTLAB_A_IP"
check "after cut-host a B cannot reach $FTLAB_A_FT_IP" no_reach b "$FTLAB_A_FT_IP"
check "after cut-host a the client still reaches B" reach c "$FTLAB_B_IP"
check "status with a host cut still exits 0" quiet lab status
check "restore-host a" quiet lab restore-host a
check "after restore-host a the client reaches A" reach c "$FTLAB_A_IP"
check "after restore-host a B reaches $FTLAB_A_FT_IP" reach b "$FTLAB_A_FT_IP"

# A half-built lab: status says what is missing, up repairs it.
quiet lab exec sw ip link del c-vm
quiet ip netns del "$FTLAB-b"
refute "status on a broken lab exits nonzero" quiet lab status
# shellcheck disable=SC2016  # expanded by the inner bash
check "status names what is missing" bash -c '"$1" status | grep -q "namespace $2-b missing"' _ "$LAB" "$FTLAB"
check "up repairs it" quiet lab up
check "status after repair exits 0" quiet lab status
check "after repair the client reaches B" reach c "$FTLAB_B_IP"
check "after repair B reaches $FTLAB_A_FT_IP" reach b "$FTLAB_A_FT_IP"

refute "an unknown command is refused" quiet "$LAB" no-such-command

check "down" quiet lab down
check "no namespace with the prefix is left" [ -z "$(lab_namespaces)" ]
check "no shared dir is left" [ ! -e "$FTLAB_SHARED_DIR" ]
check "the lab's directory is gone" [ ! -e "$FTLAB_DIR" ]
check "down again succeeds" quiet lab down
refute "status on no lab exits nonzero" quiet lab status
check "the root namespace's interfaces are as before" [ "$(root_links)" = "$roots_before" ]

finish
