#!/usr/bin/env bash
# libvirtd for the lab, the demo and the tests, on machines without systemd as PID 1 (this
# one, CI). ftd reads VM definitions from libvirt (qemu:///system) and never asks libvirt
# to run a domain, so libvirtd alone is enough (no virtlogd). Run as root.
#
#   scripts/libvirtd.sh start    start libvirtd unless qemu:///system already answers
#   scripts/libvirtd.sh stop     stop the libvirtd this script started, and only that one
#   scripts/libvirtd.sh status   exit 0 if qemu:///system answers, 3 if not
#
# Idempotent. A libvirtd this script did not start (systemd's, an operator's) is never
# touched: the script only ever signals the pid in its own pid file.
set -euo pipefail

URI=qemu:///system
STATE_DIR=${FTD_LIBVIRTD_DIR:-/run/ftd-libvirtd}
PID_FILE=$STATE_DIR/libvirtd.pid
LOG_FILE=$STATE_DIR/libvirtd.log
START_TIMEOUT_S=20
STOP_TIMEOUT_S=15

die() { echo "libvirtd.sh: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 start|stop|status" >&2
  exit 2
}

# `virsh uri` connects and asks nothing of QEMU; `virsh version` would wait for libvirt's
# probes of the QEMU binaries when its capability cache is cold.
answers() { timeout 10 virsh -c "$URI" uri >/dev/null 2>&1; }

# The pid in our pid file if that process still is a libvirtd; nothing otherwise.
own_pid() {
  local pid
  [ -r "$PID_FILE" ] || return 0
  pid=$(tr -dc 0-9 <"$PID_FILE")
  [ -n "$pid" ] || return 0
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = libvirtd ] && echo "$pid"
  return 0
}

# Without udev, /dev/kvm stays root:root 0600, while libvirt runs QEMU as libvirt-qemu
# (group kvm): libvirt then finds that KVM "was enabled when probing but is not available
# now" and re-probes QEMU on every lookup, ~4 s each, ~50 s per `virsh define`. Give the node
# what Debian's udev rules give it, once, and say so.
fix_kvm_node() {
  [ -c /dev/kvm ] && getent group kvm >/dev/null || return 0
  [ "$(stat -c %G:%a /dev/kvm)" = root:600 ] || return 0
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm &&
    echo "libvirtd.sh: /dev/kvm was root:root 0600 (no udev); made it root:kvm 0660 as udev does"
}

start() {
  if answers; then
    echo "libvirtd.sh: $URI answers already; nothing to do"
    return 0
  fi
  local pid
  pid=$(own_pid)
  if [ -z "$pid" ]; then
    local others
    others=$(pgrep -x libvirtd || true)
    [ -z "$others" ] ||
      die "a libvirtd runs (pid $(echo "$others" | tr '\n' ' ')) but $URI does not answer;" \
        "not starting a second one (check its log, or stop it)"
    fix_kvm_node
    mkdir -p "$STATE_DIR" && chmod 0700 "$STATE_DIR"
    rm -f "$PID_FILE"
    # --daemon forks once it has initialized; its log goes to our state dir, not stderr.
    LIBVIRT_LOG_OUTPUTS="3:file:$LOG_FILE" libvirtd --daemon --pid-file "$PID_FILE" ||
      die "libvirtd --daemon failed (exit $?); log: $LOG_FILE"
  fi
  local waited=0
  until answers; do
    if [ "$waited" -ge "$START_TIMEOUT_S" ]; then
      tail -n 5 "$LOG_FILE" >&2 2>/dev/null || true
      die "libvirtd started but $URI did not answer within ${START_TIMEOUT_S}s; log: $LOG_FILE"
    fi
    pid=$(own_pid)
    if [ -z "$pid" ]; then
      tail -n 5 "$LOG_FILE" >&2 2>/dev/null || true
      die "libvirtd exited before $URI answered; log: $LOG_FILE"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "libvirtd.sh: started libvirtd (pid $(own_pid)); $URI answers"
}

stop() {
  local pid
  pid=$(own_pid)
  if [ -z "$pid" ]; then
    rm -f "$PID_FILE"
    echo "libvirtd.sh: no libvirtd started by this script runs; nothing to stop"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while [ -d "/proc/$pid" ] && [ "$waited" -lt "$((STOP_TIMEOUT_S * 10))" ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if [ -d "/proc/$pid" ]; then
    echo "libvirtd.sh: libvirtd (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT_S}s; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  echo "libvirtd.sh: stopped libvirtd (pid $pid)"
}

status() {
  local pid
  pid=$(own_pid)
  if answers; then
    if [ -n "$pid" ]; then
      echo "libvirtd.sh: $URI answers (libvirtd pid $pid, started by this script)"
    else
      echo "libvirtd.sh: $URI answers (a libvirtd not started by this script)"
    fi
    return 0
  fi
  if [ -n "$pid" ]; then
    echo "libvirtd.sh: libvirtd pid $pid (ours) runs but $URI does not answer; log: $LOG_FILE"
  else
    echo "libvirtd.sh: $URI does not answer; no libvirtd started by this script runs"
  fi
  return 3
}

[ $# -eq 1 ] || usage
[ "$(id -u)" -eq 0 ] || die "run as root (libvirtd for $URI is a system daemon)"
command -v libvirtd >/dev/null 2>&1 || die "no libvirtd; run scripts/install-deps.sh"
command -v virsh >/dev/null 2>&1 || die "no virsh; run scripts/install-deps.sh"
case $1 in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
