#!/bin/bash
# check-bus-policy.sh DBUS-DAEMON POLICY.conf...
# Starts a private system bus whose config includes every POLICY (as the
# system bus includes system.d/) and fails if dbus-daemon refuses them or
# complains about anything but what this machine may legitimately lack: the
# users "buildyard" and "buildyard-latent" or the group "buildyard"
# (dbus-daemon then skips those <policy> blocks) and a raised fd limit (no
# privilege for it).
set -u
daemon=$1
shift
dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

mkdir "$dir/policy.d"
for policy in "$@"; do
    cp "$policy" "$dir/policy.d/" || exit 1
done
sed -e "s|@DIR@|$dir|g" -e "s|@POLICYDIR@|$dir/policy.d|g" \
    "$(dirname "${BASH_SOURCE[0]}")/../lib/system-bus.conf.in" >"$dir/bus.conf"

# --print-address writes the address once the bus listens.
mkfifo "$dir/address"
"$daemon" --config-file="$dir/bus.conf" --nofork --nopidfile --print-address=3 \
    3>"$dir/address" 2>"$dir/stderr" &
pid=$!
address=
read -r -t 10 address <"$dir/address"
if [ -z "$address" ]; then
    echo "dbus-daemon did not start with $*:" >&2
    cat "$dir/stderr" >&2
    exit 1
fi
unexpected=$(grep -v -e 'Unknown username "buildyard"' -e 'Unknown username "buildyard-latent"' \
    -e 'Unknown group "buildyard"' -e 'Failed to set fd limit' "$dir/stderr")
if [ -n "$unexpected" ]; then
    echo "dbus-daemon complained about $*:" >&2
    echo "$unexpected" >&2
    exit 1
fi
echo "$*: loaded"
cat "$dir/stderr"
