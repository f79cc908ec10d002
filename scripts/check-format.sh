#!/usr/bin/env bash
# Checks that every C, C++ and proto file git tracks is formatted by .clang-format (the QEMU
# patches are QEMU's style and are not checked). Prints each file that differs and the
# command that fixes it; exit 1 if any. Run from anywhere:
#   scripts/check-format.sh           check
#   scripts/check-format.sh --fix     reformat in place
# Exit 77 (skipped) without clang-format-14 or outside a git checkout; under CI=true that is a
# failure: a skipped check in CI is one that cannot fail.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format-14}

skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL (CI=true, may not skip): $1"
    exit 1
  fi
  echo "SKIP: $1"
  exit 77
}
command -v "$CLANG_FORMAT" >/dev/null || skip "no $CLANG_FORMAT (apt-get install clang-format)"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || skip "not a git checkout"

mapfile -t files < <(git ls-files '*.c' '*.cc' '*.h' '*.proto' | grep -v '^replay/qemu-patches/')
if [ "${1:-}" = --fix ]; then
  "$CLANG_FORMAT" -i "${files[@]}"
  echo "formatted ${#files[@]} files"
  exit 0
fi
# One run over every file; each one that differs is named in clang-format's diagnostics.
rc=0
out=$("$CLANG_FORMAT" --dry-run -Werror "${files[@]}" 2>&1) || rc=$?
mapfile -t bad < <(printf '%s\n' "$out" |
                   sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*/\1/p' | sort -u)
if [ "$rc" -ne 0 ] && [ ${#bad[@]} -eq 0 ]; then
  echo "$CLANG_FORMAT failed (exit $rc) without naming a file:"
  printf '%s\n' "$out" | head -20
  exit 1
fi
if [ ${#bad[@]} -gt 0 ]; then
  echo "${#bad[@]} of ${#files[@]} files are not formatted by .clang-format:"
  printf '  %s\n' "${bad[@]}"
  echo "fix: scripts/check-format.sh --fix (or $CLANG_FORMAT -i FILE)"
  exit 1
fi
echo "all ${#files[@]} files formatted by .clang-format"
