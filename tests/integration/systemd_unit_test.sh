#!/usr/bin/env bash
# ftd/systemd/ftd.service is a unit systemd loads without a word of complaint, and its
# ExecStart is a command line this ftd accepts. Offline: no systemd as PID 1 is needed.
# Usage: systemd_unit_test.sh UNIT_FILE FTD_BINARY. Exit 77 (skipped) without systemd-analyze.
set -uo pipefail

UNIT=${1:?usage: systemd_unit_test.sh UNIT_FILE FTD_BINARY}
FTD=$(realpath "${2:?usage: systemd_unit_test.sh UNIT_FILE FTD_BINARY}")
INSTALLED_FTD=/usr/sbin/ftd

skip() { echo "SKIP: $*"; exit 77; }
command -v systemd-analyze >/dev/null 2>&1 || skip "no systemd-analyze (Debian package systemd)"

TMP=$(mktemp -d /tmp/ftd-unit-test-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM

# shellcheck source=tests/integration/check.sh
source "$(dirname "$0")/check.sh"

# `systemd-analyze verify` refuses a unit whose ExecStart binary does not exist, and ftd is
# not installed here. So it checks a copy that differs in one thing: ExecStart names the
# ftd this build made instead of /usr/sbin/ftd. The copy keeps the name ftd.service
# (verify reads the unit type from it) and every other line byte for byte.
mkdir "$TMP/unit"
COPY="$TMP/unit/ftd.service"
sed "s|^ExecStart=$INSTALLED_FTD |ExecStart=$FTD |" "$UNIT" >"$COPY"
check "the unit starts $INSTALLED_FTD" grep -q "^ExecStart=$INSTALLED_FTD " "$UNIT"
check "the copy differs from the unit in its ExecStart line only" \
  [ "$(diff "$UNIT" "$COPY" | grep '^[<>]' | grep -vc '^[<>] ExecStart=')" -eq 0 ]
# ftd's READY=1 and watchdog pings are what keep the service up: the unit must ask for them.
# shellcheck disable=SC2016  # expanded by the inner bash
check "the unit is Type=notify with a watchdog" \
  bash -c 'grep -qx "Type=notify" "$1" && grep -q "^WatchdogSec=" "$1"' _ "$UNIT"

# systemd-analyze exits 0 even on a key it does not know or a value it cannot parse: it
# only warns, on stderr. Any stderr at all is a failure.
verify() {  # verify UNIT ERRFILE: exit status of systemd-analyze; its stderr into ERRFILE
  systemd-analyze verify --man=no "$1" >"$TMP/verify.out" 2>"$2"
}
check "systemd-analyze verify exits 0" verify "$COPY" "$TMP/verify.err"
check "systemd-analyze verify says nothing on stderr" [ ! -s "$TMP/verify.err" ]
if [ -s "$TMP/verify.err" ]; then sed 's/^/  stderr: /' "$TMP/verify.err"; fi

# The stderr check catches what it is for: a copy with a misspelt key is reported.
mkdir "$TMP/bad"
sed 's|^WatchdogSec=|WatchdogSecs=|' "$COPY" >"$TMP/bad/ftd.service"
verify "$TMP/bad/ftd.service" "$TMP/bad.err"
check "a misspelt key would be caught (stderr names it)" grep -q "WatchdogSecs" "$TMP/bad.err"

# ExecStart's arguments are ones this ftd takes: the same command line, its config replaced
# by a minimal one and --check-config added, exits 0.
EXEC=$(sed -n "s|^ExecStart=$INSTALLED_FTD ||p" "$UNIT")
printf '[node]\nname = unit-test\nstate_dir = %s/state\nrun_dir = %s/run\n' "$TMP" "$TMP" \
  >"$TMP/ftd.conf"
read -r -a ARGS <<<"${EXEC//\/etc\/ftd\/ftd.conf/$TMP/ftd.conf}"
check "ftd accepts ExecStart's arguments (${EXEC})" \
  bash -c '"$@" --check-config >/dev/null' _ "$FTD" "${ARGS[@]}"

finish
