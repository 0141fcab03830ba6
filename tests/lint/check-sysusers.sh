#!/bin/bash
# check-sysusers.sh SYSUSERS-FILE
# systemd-sysusers parses the file into an empty root and would create the
# users and groups buildyard (the master) and buildyard-latent (latentd); any
# complaint fails.
set -u
file=$(realpath "$1")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc"
out=$(systemd-sysusers --root="$root" --dry-run "$file" 2>&1)
rc=$?
echo "$out"
if [ "$rc" -ne 0 ] || grep -qiE 'ignoring|failed|invalid|unknown' <<<"$out" ||
    ! grep -q "Creating user 'buildyard' " <<<"$out" || ! grep -q "Creating user 'buildyard-latent' " <<<"$out"; then
    echo "$file: systemd-sysusers did not accept it" >&2
    exit 1
fi
