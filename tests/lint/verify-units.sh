#!/bin/bash
# verify-units.sh SYSTEMD-ANALYZE UNIT...
# systemd-analyze verify exits 0 on mere warnings (an unknown key, a value it
# ignores), so any output on stderr counts as a failure too, except lines
# about another package's unit: verify loads the machine's units as well, and
# their warnings (e.g. "keystone.service: Dependency After=keystone.service is
# dropped.") say nothing about ours.
set -u
analyze=$1
shift
status=0
for unit in "$@"; do
    all=$("$analyze" verify --man=no "$unit" 2>&1 >/dev/null)
    rc=$?
    err=$(printf '%s\n' "$all" | grep -v -E '^[A-Za-z0-9@_.\\-]+\.(service|socket|target|timer|mount|automount|path|slice|scope|swap|device): ' \
          ; printf '%s\n' "$all" | grep -E '^(buildyard[A-Za-z0-9@_.\\-]*)\.(service|socket|target): ')
    err=$(printf '%s' "$err" | sed '/^$/d')
    if [ "$rc" -ne 0 ] || [ -n "$err" ]; then
        printf '%s: systemd-analyze verify failed (exit %d):\n%s\n' "$unit" "$rc" "$err" >&2
        status=1
    else
        printf '%s: ok\n' "$unit"
    fi
done
exit "$status"
