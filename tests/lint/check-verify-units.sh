#!/bin/bash
# check-verify-units.sh SYSTEMD-ANALYZE UNIT
# The unit lint (verify-units.sh) judges our units only, and still fails on
# a defect of ours. With another package's unit installed that draws a
# warning on every verify (as Debian's keystone.service does: "Dependency
# After=keystone.service is dropped"), a copy of UNIT passes; the same copy
# with an unknown key fails and names it, and so does one that requires a
# unit that does not exist.
set -u
analyze=$1
unit=$2
here=$(dirname "${BASH_SOURCE[0]}")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
name=$(basename "$unit")
mkdir "$dir/units" "$dir/units/multi-user.target.wants" "$dir/ours"
printf '[Unit]\nDescription=another package\nAfter=another-package.service\n[Service]\nExecStart=/bin/true\n' \
    >"$dir/units/another-package.service"
ln -s ../another-package.service "$dir/units/multi-user.target.wants/"
export SYSTEMD_UNIT_PATH="$dir/units:"
fail() { echo "FAIL: $*" >&2; exit 1; }

raw=$("$analyze" verify --man=no "$unit" 2>&1 >/dev/null)
grep -q '^another-package.service: Dependency After=another-package.service is dropped' <<<"$raw" \
    || fail "the other package's unit drew no warning, so this check proves nothing: $raw"
cp "$unit" "$dir/ours/$name"
out=$(bash "$here/verify-units.sh" "$analyze" "$dir/ours/$name" 2>&1) || fail "our clean unit failed: $out"

sed 's/^\[Service\]$/[Service]\nRestartSecc=5/' "$unit" >"$dir/ours/$name"
out=$(bash "$here/verify-units.sh" "$analyze" "$dir/ours/$name" 2>&1) && fail "an unknown key passed: $out"
grep -q "Unknown key 'RestartSecc'" <<<"$out" || fail "the failure does not name the unknown key: $out"

sed 's/^\[Unit\]$/[Unit]\nRequires=buildyard-no-such-unit.service/' "$unit" >"$dir/ours/$name"
out=$(bash "$here/verify-units.sh" "$analyze" "$dir/ours/$name" 2>&1) && fail "a missing dependency passed: $out"
grep -q "buildyard-no-such-unit.service" <<<"$out" || fail "the failure does not name the missing unit: $out"
echo "verify-units.sh ignores another package's warnings and fails on ours"
