#!/bin/bash
# lint-man.sh MANDOC PAGE...
# Any message from mandoc -Tlint at level warning or above is a failure.
set -u
mandoc=$1
shift
status=0
for page in "$@"; do
    out=$("$mandoc" -Tlint -W warning "$page" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
        printf '%s: mandoc -Tlint failed (exit %d):\n%s\n' "$page" "$rc" "$out" >&2
        status=1
    else
        printf '%s: ok\n' "$page"
    fi
done
exit "$status"
