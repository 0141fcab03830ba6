#!/bin/bash
# check-bus-policy.sh DBUS-DAEMON POLICY.conf
# Starts a private system bus whose config includes POLICY and fails if
# dbus-daemon refuses it or complains about anything but what this machine
# may legitimately lack: the user or group "buildyard" (dbus-daemon then
# skips those <policy> blocks) and a raised fd limit (no privilege for it).
set -u
daemon=$1
policy=$(realpath "$2")
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

sed -e "s|@DIR@|$dir|g" -e "s|@POLICY@|$policy|g" \
    "$(dirname "${BASH_SOURCE[0]}")/../lib/system-bus.conf.in" >"$dir/bus.conf"

# --print-address writes the address once the bus listens.
mkfifo "$dir/address"
"$daemon" --config-file="$dir/bus.conf" --nofork --nopidfile --print-address=3 \
    3>"$dir/address" 2>"$dir/stderr" &
pid=$!
address=
read -r -t 10 address <"$dir/address"
if [ -z "$address" ]; then
    echo "dbus-daemon did not start with $policy:" >&2
    cat "$dir/stderr" >&2
    exit 1
fi
unexpected=$(grep -v -e 'Unknown username "buildyard"' -e 'Unknown group "buildyard"' \
    -e 'Failed to set fd limit' "$dir/stderr")
if [ -n "$unexpected" ]; then
    echo "dbus-daemon complained about $policy:" >&2
    echo "$unexpected" >&2
    exit 1
fi
echo "$policy: loaded"
cat "$dir/stderr"
