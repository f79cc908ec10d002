# Sourced by the shell tests: PASS/FAIL bookkeeping and the closing line ctest's log shows.
#   check DESCRIPTION CMD...    CMD must succeed
#   refute DESCRIPTION CMD...   CMD must fail
#   finish                      prints "N passed, N failed" and exits 1 on any failure
passed=0
failed=0

pass_or_fail() {  # pass_or_fail OK DESCRIPTION
  if [ "$1" -eq 1 ]; then
    echo "PASS $2"
    passed=$((passed + 1))
  else
    echo "FAIL $2"
    failed=$((failed + 1))
  fi
}
check() {
  local what=$1
  shift
  if "$@"; then pass_or_fail 1 "$what"; else pass_or_fail 0 "$what"; fi
}
refute() {
  local what=$1
  shift
  if "$@"; then pass_or_fail 0 "$what"; else pass_or_fail 1 "$what"; fi
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
