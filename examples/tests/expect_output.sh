#!/usr/bin/env bash
# Passes when a command exits 0 and its output matches an extended regular expression.
# Usage: expect_output.sh REGEX COMMAND [ARGS...]
set -uo pipefail
regex=$1
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
[ "$rc" = 0 ] || { echo "FAIL: $1 exited $rc"; exit 1; }
grep -Eq -- "$regex" <<<"$out" || { echo "FAIL: no line of the output matches /$regex/"; exit 1; }
