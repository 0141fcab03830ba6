# Sourced by the quickstart and the benchmarks: a private system bus made
# from tests/lib/system-bus.conf.in (the integration tests use it too).
#
#   private_bus_start DIR SOURCE_DIR   starts dbus-daemon on DIR/bus, sets
#                                      PRIVATE_BUS_PID and exports
#                                      DBUS_SYSTEM_BUS_ADDRESS
#   private_bus_stop                   stops it

private_bus_start() {
    local dir=$1 src=$2 i
    # Every policy of the project (dbus/*.conf) is in force.
    sed -e "s|@DIR@|$dir|g" -e "s|@POLICYDIR@|$src/dbus|g" \
        "$src/tests/lib/system-bus.conf.in" >"$dir/bus.conf"
    # The child truncates it, maybe after the wait below has looked: an old
    # address must not count as the new bus.
    rm -f "$dir/bus.address"
    dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile --print-address=3 3>"$dir/bus.address" \
        >"$dir/dbus-daemon.log" 2>&1 &
    PRIVATE_BUS_PID=$!
    for ((i = 0; i < 200; i++)); do
        [ -s "$dir/bus.address" ] && break
        kill -0 "$PRIVATE_BUS_PID" 2>/dev/null || { cat "$dir/dbus-daemon.log" >&2; return 1; }
        sleep 0.05
    done
    [ -s "$dir/bus.address" ] || { echo "private bus did not start" >&2; return 1; }
    export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$dir/bus
}

private_bus_stop() {
    [ -n "${PRIVATE_BUS_PID:-}" ] || return 0
    kill -TERM "$PRIVATE_BUS_PID" 2>/dev/null || true
    wait "$PRIVATE_BUS_PID" 2>/dev/null || true
    PRIVATE_BUS_PID=
}
