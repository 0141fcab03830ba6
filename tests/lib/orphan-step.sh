#!/bin/sh
# orphan-step.sh LOG MODE: the build step of the no-rerun-beside-an-orphan
# trials (test_orphans.py, tests/systemd/test-build-units.sh).
#
# Under a lock on LOG.lock it first notes which processes registered in LOG
# by other builds (an earlier run of the same request) are still alive, in
# a line "start BUILD alive: PID...", and then registers its own processes
# as "pid BUILD PID STARTTIME" (the start time from /proc tells a live
# process from a recycled pid; a zombie has exited and counts as gone).
# It then runs for 3 s.
#   MODE sleep:    the step sleeps.
#   MODE stubborn: the step ignores SIGTERM and first forks a daemon that
#                  leaves its process group with setsid (and ignores SIGTERM too).
log=$1
mode=$2
starttime() { cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null; }
# running PID STARTTIME: PID is that process, and it has not exited.
running() {
    set -- "$2" $(cut -d' ' -f3,22 "/proc/$1/stat" 2>/dev/null)
    [ "$#" = 3 ] && [ "$2" != Z ] && [ "$2" != X ] && [ "$3" = "$1" ]
}
register() { echo "pid $BUILDYARD_BUILD_ID $1 $(starttime "$1")" >>"$log"; }

exec 9>>"$log.lock"
flock 9
alive=
if [ -e "$log" ]; then
    while read -r kind build pid start; do
        [ "$kind" = pid ] && [ "$build" != "$BUILDYARD_BUILD_ID" ] || continue
        running "$pid" "$start" && alive="$alive $pid"
    done <"$log"
fi
echo "start $BUILDYARD_BUILD_ID alive:$alive" >>"$log"
register $$
if [ "$mode" = stubborn ]; then
    trap '' TERM
    setsid sleep 60 </dev/null >/dev/null 2>&1 &
    daemon=$!
    # Registered once it has its own session (field 6 of its stat).
    while [ "$(cut -d' ' -f6 "/proc/$daemon/stat" 2>/dev/null)" != "$daemon" ]; do sleep 0.01; done
    register $daemon
fi
sleep 3 &
step=$!
register $step
echo "ready $BUILDYARD_BUILD_ID" >>"$log"
flock -u 9
exec 9>&-
wait $step
