# Sourced by the quickstart and the benchmarks: a private system bus that
# behaves like Debian's (nobody owns names or calls methods unless a policy
# says so), with the project's own policy included.
#
#   private_bus_start DIR SOURCE_DIR   starts dbus-daemon on DIR/bus, sets
#                                      PRIVATE_BUS_PID and exports
#                                      DBUS_SYSTEM_BUS_ADDRESS
#   private_bus_stop                   stops it

private_bus_start() {
    local dir=$1 src=$2 i
    cat >"$dir/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>$src/dbus/org.buildyard.Master1.conf</include>
</busconfig>
CONF
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
