#!/bin/bash
# The quickstart: Buildyard from a fresh Debian 12 to a finished build.
#
#   bash tests/quickstart.sh [--keep] [--no-install] [--build-dir DIR]
#
# As root (e.g. with sudo, or su -c). Installs what building and running
# needs (.ci/install-deps --run, not the test tools), builds the programs
# into ./build, starts a
# private system bus, the master with etc/master.ini and its two local
# workers, runs `buildyardctl submit hello --wait`, and shows what the master
# knows. Everything it started is stopped at the end, unless --keep is given.
# Exits non-zero when any step fails.
set -euo pipefail

usage() {
    echo "usage: bash tests/quickstart.sh [--keep] [--no-install] [--build-dir DIR] (as root)" >&2
    exit 2
}

keep=0
install=1
build_dir=
while [ $# -gt 0 ]; do
    case $1 in
        --keep) keep=1 ;;
        --no-install) install=0 ;;
        --build-dir) [ $# -ge 2 ] || usage; build_dir=$(realpath -m "$2"); shift ;;
        *) usage ;;
    esac
    shift
done
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source_dir=$(pwd)
build_dir=${build_dir:-$source_dir/build}

if [ "$(id -u)" -ne 0 ]; then
    # The bus policy lets only root (or the user buildyard) own the master's name.
    echo "quickstart: run this as root (e.g. sudo bash tests/quickstart.sh, or su -c 'bash tests/quickstart.sh')" >&2
    exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

tmp=
pids=()       # started processes, in start order
names=()

# Shows the end of every log, for a failure.
show_logs() {
    [ -n "$tmp" ] || return 0
    local log
    for log in "$tmp"/*.log; do
        [ -e "$log" ] || continue
        printf '\n--- %s (last 30 lines)\n' "$log" >&2
        tail -n 30 "$log" >&2
    done
}

fail() {
    echo "quickstart: $*" >&2
    show_logs
    exit 1
}

# Stops what we started, newest first, by PID: SIGTERM, then SIGKILL after 10 s.
stop_all() {
    local i pid deadline
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "quickstart: ${names[i]} (pid $pid) ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

on_exit() {
    local status=$? i
    if [ "$keep" -eq 1 ] && [ ${#pids[@]} -gt 0 ]; then
        printf '\nEverything is still running (--keep). To use it:\n'
        printf '  export DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s/bus\n' "$tmp"
        printf '  %s/bin/buildyardctl workers\n' "$build_dir"
        printf 'Logs are in %s. To stop it all:\n' "$tmp"
        printf '  kill'
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do printf ' %s' "${pids[i]}"; done
        printf '; rm -rf %s\n' "$tmp"
        return
    fi
    stop_all
    [ -z "$tmp" ] || rm -rf "$tmp"
    if [ "$status" -eq 0 ]; then
        printf '\nquickstart: all done, everything stopped.\n'
    fi
}
trap on_exit EXIT

# start NAME COMMAND...: runs COMMAND in the background, output in NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$tmp/$name.log" 2>&1 &
    pids+=("$!")
    names+=("$name")
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds, for at
# most SECONDS, and gives up early when a process we started has exited.
wait_for() {
    local what=$1 limit=$2 i
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        for i in "${!pids[@]}"; do
            kill -0 "${pids[i]}" 2>/dev/null || fail "waiting for $what: ${names[i]} exited"
        done
        [ $SECONDS -lt $deadline ] || fail "waiting for $what: not reached in $limit s"
        sleep 0.1
    done
}

if [ "$install" -eq 1 ]; then
    step "Installing what building and running needs (.ci/install-deps --run)"
    bash "$source_dir/.ci/install-deps" --run
fi

step "Building into $build_dir"
# Without the tests, whose tools --run did not install; .ci/run turns them
# back on in the same build directory.
cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILDYARD_TESTS=OFF
# Just the programs.
cmake --build "$build_dir" -j"$(nproc)" --target buildyard-masterd buildyard-workerd buildyardctl
bin=$build_dir/bin
for program in buildyard-masterd buildyard-workerd buildyardctl; do
    [ -x "$bin/$program" ] || fail "$bin/$program was not built"
done

tmp=$(mktemp -d /tmp/buildyard-quickstart.XXXXXX)
chmod 755 "$tmp"

step "Starting a private system bus in $tmp"
# Like Debian's system bus, with the project's policy included.
. "$source_dir/tests/lib/private-bus.sh"
private_bus_start "$tmp" "$source_dir" || fail "the private bus did not start"
pids+=("$PRIVATE_BUS_PID")
names+=(dbus-daemon)
echo "DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS"

step "Starting buildyard-masterd with etc/master.ini"
mkdir -p "$tmp/etc/workers" "$tmp/state"
cp "$source_dir/etc/master.ini" "$tmp/etc/master.ini"
cp "$source_dir/etc/workers/bot1.ini" "$source_dir/etc/workers/bot2.ini" "$tmp/etc/workers/"
"$bin/buildyard-masterd" --check-config --config "$tmp/etc/master.ini"
start buildyard-masterd "$bin/buildyard-masterd" --config "$tmp/etc/master.ini" --state-directory "$tmp/state"
wait_for "buildyard-masterd on the bus" 20 \
    busctl --system get-property org.buildyard.Master1 /org/buildyard/Master1 org.buildyard.Master1 Version

step "Starting the workers bot1 and bot2"
for worker in bot1 bot2; do
    start "buildyard-workerd-$worker" "$bin/buildyard-workerd" --name "$worker" \
        --config "$tmp/etc/workers/$worker.ini" --basedir "$tmp/$worker"
done
# Both attached: ConnectedWorkers is 2.
attached() {
    [ "$(busctl --system get-property org.buildyard.Master1 /org/buildyard/Master1 \
        org.buildyard.Master1 ConnectedWorkers)" = "u 2" ]
}
wait_for "both workers to attach" 20 attached
"$bin/buildyardctl" workers

step "buildyardctl submit hello --wait"
set +e
submit_output=$(timeout 120 "$bin/buildyardctl" submit hello --wait)
submit_status=$?
set -e
echo "$submit_output"
[ "$submit_status" -eq 0 ] || fail "buildyardctl submit hello --wait exited with status $submit_status"
# The last line is "build ID: RESULT", ID being the build that finally ran.
build_id=$(sed -n 's/^build \([0-9][0-9]*\): .*$/\1/p' <<<"$submit_output" | tail -n 1)
[ -n "$build_id" ] || fail "cannot find the build id in the output of buildyardctl submit"

step "busctl --system tree org.buildyard.Master1"
busctl --system --no-pager tree org.buildyard.Master1

step "buildyardctl workers"
"$bin/buildyardctl" workers

step "buildyardctl builds"
"$bin/buildyardctl" builds

step "buildyardctl log $build_id"
"$bin/buildyardctl" log "$build_id"
