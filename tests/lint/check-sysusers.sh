#!/bin/bash
# check-sysusers.sh SYSUSERS-FILE
# systemd-sysusers parses the file into an empty root and would create the
# user and group buildyard; any complaint fails.
set -u
file=$(realpath "$1")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc"
out=$(systemd-sysusers --root="$root" --dry-run "$file" 2>&1)
rc=$?
echo "$out"
if [ "$rc" -ne 0 ] || grep -qiE 'ignoring|failed|invalid|unknown' <<<"$out" ||
    ! grep -q "Creating user 'buildyard'" <<<"$out"; then
    echo "$file: systemd-sysusers did not accept it" >&2
    exit 1
fi
