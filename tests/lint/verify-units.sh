#!/bin/bash
# verify-units.sh SYSTEMD-ANALYZE UNIT...
# systemd-analyze verify exits 0 on mere warnings (an unknown key, a value it
# ignores), so any output on stderr counts as a failure too.
set -u
analyze=$1
shift
status=0
for unit in "$@"; do
    err=$("$analyze" verify --man=no "$unit" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -ne 0 ] || [ -n "$err" ]; then
        printf '%s: systemd-analyze verify failed (exit %d):\n%s\n' "$unit" "$rc" "$err" >&2
        status=1
    else
        printf '%s: ok\n' "$unit"
    fi
done
exit "$status"
