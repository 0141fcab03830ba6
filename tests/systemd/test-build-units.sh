#!/bin/bash
# Each build in its own transient unit, under real systemd as PID 1 in a
# container (see test-units.sh and tests/lib/nspawn.sh):
#  - a running build is buildyard-build-WORKER-ID.scope, bound to its
#    worker's unit, KillMode=control-group;
#  - cancel kills a daemon that left its step's process group with setsid;
#  - tasks_max and timeout are enforced; accounting is plausible;
#  - sandbox = standard and strict: the build is a service whose steps get
#    its settings (tests/lib/sandbox-probe.sh), and cancel still kills all;
#  - isolation = subreaper: that worker's builds run in its own unit;
#  - 20 red-team trials: a build (sleep 3, or a step that ignores SIGTERM
#    and forks a setsid daemon) whose worker is killed with kill -9 while the
#    queue is empty is rerun only after every process of its first run has
#    exited, as the steps' own log (tests/lib/orphan-step.sh) shows.
#   test-build-units.sh BUILD_DIR PREFIX
# Exit 77 (skipped) without root or systemd-nspawn.
set -euo pipefail
build=$(realpath "$1")
prefix=$2
source_dir=$(realpath "$(dirname "${BASH_SOURCE[0]}")/../..")

. "$source_dir/tests/lib/nspawn.sh"
nspawn_test -n 200
work=$(mktemp -d /tmp/by-build-units-XXXXXX)
chmod 755 "$work"

. "$source_dir/tests/lib/master-calls.sh"
# submit BUILDER [KEY VALUE]...: prints the new build's id.
submit() {
    local builder=$1
    shift
    prop "$(master_call SubmitBuild 'sa{ss}' "$builder" $(($# / 2)) "$@" | cut -d' ' -f2 | tr -d '"')" \
        org.buildyard.Build1 Id
}
# final ID: the id of the last build of ID's request, once it has finished.
final() {
    local id=$1
    while :; do
        wait_for "build $id finished" 40 build_state_is "$id" finished
        [ "$(build_prop "$id" Result)" = retry ] || { echo "$id"; return; }
        id=$(build_prop "$id" RetriedAs)
    done
}
log_has() { grep -q "^$2" "$1" 2>/dev/null; }
# alive LOG BUILD: the registered processes of BUILD still alive, in the container.
alive() {
    ct sh -c 'while read -r k b p s; do [ "$k" = pid ] && [ "$b" = "$2" ] || continue;
              st=$(cut -d" " -f3,22 /proc/$p/stat 2>/dev/null);
              [ "${st#* }" = "$s" ] && [ "${st%% *}" != Z ] && echo "$p"; done <"$1"; true' \
        sh "/srv/test/$(basename "$1")" "$2"
}

stage=$work/stage
DESTDIR=$stage cmake --install "$build" >/dev/null
srv=$work/srv
mkdir -p "$srv"
chmod 777 "$srv"
cp "$source_dir/tests/lib/orphan-step.sh" "$source_dir/tests/lib/sandbox-probe.sh" "$srv/"

etc=$work/etc-buildyard
mkdir -p "$etc/master.d" "$etc/workers"
{
    printf '[master]\nname = build-units-test\nlisten =\n'
    for w in w1 w2 w3 w4; do
        printf '\n[worker %s]\ntype = local\nlost_build_grace = 120\n' "$w"
        printf '\n[builder b-%s]\nworkers = %s\nstep.1 = sh /srv/test/orphan-step.sh "$BUILDYARD_PROP_log" "$BUILDYARD_PROP_mode"\n' "$w" "$w"
        printf 'kill_timeout = 1\n' >"$etc/workers/$w.ini"
    done
    printf '\n[worker w5]\ntype = local\n'
    printf 'isolation = subreaper\n' >"$etc/workers/w5.ini"
    cat <<'INI'

[builder plain]
workers = w5
step.1 = cat /proc/self/cgroup

[builder long]
workers = w1
step.1 = setsid sleep 300 </dev/null >/dev/null 2>&1 & exec sleep 300

[builder tasks]
workers = w1
tasks_max = 8
step.1 = p=$(grep :pids: /proc/self/cgroup | cut -d: -f3); echo "pids.max $(cat /sys/fs/cgroup/pids$p/pids.max)"; n=0; while [ $n -lt 30 ]; do sleep 20 & n=$((n+1)); done; echo forked $n

[builder slow]
workers = w2
timeout = 2
step.1 = echo started; sleep 60

[builder memory]
workers = w3
step.1 = /usr/bin/python3 -c 'b = b"x" * (100 << 20); print(len(b))'

[builder sandbox-standard]
workers = w4
sandbox = standard
step.1 = sh /srv/test/sandbox-probe.sh
step.2 = test -f probe-step1 && echo "step 2 in $(grep -o 'buildyard-build-[^/]*' /proc/self/cgroup | head -1)"

[builder sandbox-strict]
workers = w4
sandbox = strict
step.1 = sh /srv/test/sandbox-probe.sh
step.2 = test -f probe-step1 && echo "step 2 in $(grep -o 'buildyard-build-[^/]*' /proc/self/cgroup | head -1)"

[builder sandbox-long]
workers = w4
sandbox = standard
step.1 = setsid sleep 301 </dev/null >/dev/null 2>&1 & exec sleep 301

[builder sandbox-killhost]
workers = w4
sandbox = standard
step.1 = setsid sleep 303 </dev/null >/dev/null 2>&1 & kill -KILL $PPID; exec sleep 303

[builder sandbox-slow]
workers = w4
sandbox = strict
timeout = 2
step.1 = echo started; sleep 60
INI
} >"$etc/master.ini"

units=$work/etc-systemd-system
mkdir -p "$units"
for w in w1 w2 w3 w4; do
    mkdir -p "$units/buildyard-worker@$w.service.d"
    printf '[Service]\nRestartSec=200ms\n' >"$units/buildyard-worker@$w.service.d/50-test.conf"
done
policy=$(find "$stage" -name org.buildyard.Master1.conf -path '*system.d*' | head -1)
[ -n "$policy" ] || fail "bus policy not installed"

step "boot systemd in a container"
nspawn_boot "$work/nspawn.log" -D / --volatile=yes -M by-build-units -b --register=no --keep-unit \
    --console=read-only --private-network \
    --overlay-ro="$prefix:$stage$prefix:$prefix" \
    --bind="$etc:/etc/buildyard" \
    --bind="$units:/etc/systemd/system" \
    --bind="$srv:/srv/test" \
    --bind-ro="$policy:/etc/dbus-1/system.d/org.buildyard.Master1.conf" \
    -- "${nspawn_init_args[@]}"
ct systemctl start --no-block buildyard-workers.target || fail "cannot start buildyard-workers.target"
for w in w1 w2 w3 w4 w5; do wait_for "$w idle" 20 worker_state_is "$w" idle; done
ct journalctl --no-pager -o cat -u buildyard-worker@w1.service | grep -q "its own transient scope" ||
    fail "w1 does not say it runs builds in scopes"
hierarchy=$(ct journalctl --no-pager -o cat -u buildyard-worker@w1.service | grep -o "cgroup hierarchy[^:]*" | head -1 || true)
echo "w1: ${hierarchy:-no note on the cgroup hierarchy}"

step "a running build is a scope bound to its worker, KillMode=control-group"
id=$(submit long)
scope=buildyard-build-w1-$id.scope
scope_holds() { ct systemd-cgls --no-pager -u "$scope" | grep -c "sleep 300" | grep -qx 2; }
wait_for "$scope to hold the step and its setsid daemon" 30 scope_holds
[ "$(ct systemctl show -P ActiveState "$scope")" = active ] || fail "$scope is not active"
[ "$(ct systemctl show -P KillMode "$scope")" = control-group ] || fail "$scope: KillMode $(ct systemctl show -P KillMode "$scope")"
[[ " $(ct systemctl show -P BindsTo "$scope") " == *" buildyard-worker@w1.service "* ]] ||
    fail "$scope is not bound to the worker: $(ct systemctl show -P BindsTo "$scope")"
# Stopped after the worker, so that the worker's SIGTERM comes first (its
# builds end retry, not failure under a step systemd killed).
[[ " $(ct systemctl show -P Before "$scope") " == *" buildyard-worker@w1.service "* ]] ||
    fail "$scope is not ordered before the worker: $(ct systemctl show -P Before "$scope")"
ct systemd-cgls --no-pager -u "$scope"

# cancel_kills ID UNIT PATTERN: cancels build ID; it ends cancelled with
# no process matching PATTERN left, and UNIT is no longer active.
cancel_kills() {
    local id=$1 unit=$2 pattern=$3
    ct busctl --system call org.buildyard.Master1 "$(build_path "$id")" org.buildyard.Build1 Cancel
    wait_for "build $id finished" 30 build_state_is "$id" finished
    [ "$(build_prop "$id" Result)" = cancelled ] || fail "build $id: $(build_prop "$id" Result)"
    if ct pgrep -f "$pattern" >/dev/null; then fail "cancelled build $id left: $(ct pgrep -af "$pattern")"; fi
    [ "$(ct systemctl show -P ActiveState "$unit")" != active ] || fail "$unit still active"
}
step "cancel stops the unit: the setsid daemon dies too"
cancel_kills "$id" "$scope" "sleep 300"

step "tasks_max = 8 stops the fork loop, where the pids controller takes it"
id=$(submit tasks)
id=$(final "$id")
out=$(ct buildyardctl log "$id")
echo "result $(build_prop "$id" Result): $(echo "$out" | grep -E "pids.max|forked|fork" | head -3 | tr '\n' ' ')"
if [[ "$out" == *"pids.max 8"* ]]; then
    [[ "$out" != *"forked 30"* ]] || fail "30 forks passed tasks_max = 8: $out"
else
    # The v1 pids controller is read-only in this container: systemd could
    # not make the build a pids cgroup (it sits in the root, which has no
    # pids.max) or write its pids.max, so nothing here enforces the limit.
    echo "tasks_max NOT enforced here (cgroup v1, read-only in the container): $(echo "$out" | grep pids.max)"
fi

step "timeout = 2 ends a build failure, with the reason in its log"
id=$(submit slow)
id=$(final "$id")
[ "$(build_prop "$id" Result)" = failure ] || fail "build $id: $(build_prop "$id" Result)"
ct buildyardctl log "$id" | grep -q "took longer than its timeout of 2 s" || fail "no timeout line in the log of $id"

step "isolation = subreaper: w5 runs its builds in its own unit, with no build unit"
ct journalctl --no-pager -o cat -u buildyard-worker@w5.service |
    grep -qF "no transient units for the builds (isolation = subreaper)" || fail "w5 does not say it runs no units"
id=$(final "$(submit plain)")
[ "$(build_prop "$id" Result)" = success ] || fail "build $id: $(build_prop "$id" Result)"
cgroups=$(ct buildyardctl log "$id")
[[ $cgroups == *"/buildyard-worker@w5.service"* && $cgroups != *buildyard-build-* ]] ||
    fail "build $id of w5 ran in another cgroup: $cgroups"

step "accounting: a build that allocates 100 MiB"
id=$(final "$(submit memory)")
[ "$(build_prop "$id" Result)" = success ] || fail "build $id: $(build_prop "$id" Result)"
cpu=$(build_prop "$id" CPUTimeNSec | awk '{print $1}')
peak=$(build_prop "$id" MemoryPeak | awk '{print $1}')
echo "CPUTimeNSec=$cpu MemoryPeak=$peak IOReadBytes=$(build_prop "$id" IOReadBytes) IOWriteBytes=$(build_prop "$id" IOWriteBytes)"
if [ "$cpu" = 18446744073709551615 ]; then
    echo "CPU accounting does not work here: CPUTimeNSec unknown (cgroup v1 cpuacct, read-only in the container)"
else
    [ "$cpu" -gt 0 ] || fail "no CPU time for build $id"
fi
if [ "$peak" = 18446744073709551615 ]; then
    echo "memory accounting does not work here: MemoryPeak unknown"
else
    [ "$peak" -ge $((100 << 20)) ] || fail "MemoryPeak $peak < 100 MiB"
fi

# probe ID KEY: what sandbox-probe.sh said for KEY in build ID's log.
probe() { ct buildyardctl log "$1" | awk -v k="$2" '$1 == k {print $2; exit}'; }
expect_probe() {
    local id=$1 key=$2 want=$3 got
    got=$(probe "$id" "$key")
    [ "$got" = "$want" ] || fail "sandbox build $id: $key is '$got', expected '$want': $(ct buildyardctl log "$id")"
}
for level in standard strict; do
    step "sandbox = $level: the build is a service whose steps get its settings"
    id=$(final "$(submit "sandbox-$level")")
    [ "$(build_prop "$id" Result)" = success ] || fail "build $id: $(build_prop "$id" Result): $(ct buildyardctl log "$id")"
    ct buildyardctl log "$id"
    expect_probe "$id" unit "buildyard-build-w4-$id.service"
    ct buildyardctl log "$id" | grep -qx "step 2 in buildyard-build-w4-$id.service" ||
        fail "step 2 of $id did not run in the same service, beside step 1's file"
    expect_probe "$id" nonewprivs 1
    expect_probe "$id" write-build-dir yes
    expect_probe "$id" write-tmp yes
    expect_probe "$id" write-etc no
    expect_probe "$id" write-usr no
    expect_probe "$id" write-root-home no
    # PrivateTmp=: /tmp and /var/tmp of its own, gone with the build.
    expect_probe "$id" write-var-tmp yes
    for t in /tmp /var/tmp; do
        if ct test -e $t/by-sandbox-probe; then fail "build $id wrote the container's $t: no PrivateTmp"; fi
    done
    if [ $level = standard ]; then
        expect_probe "$id" uid 0
        expect_probe "$id" write-var-lib yes
        expect_probe "$id" write-srv yes
    else
        # DynamicUser=: a user of its own, and the build directory the only
        # writable place besides its private /tmp and /var/tmp.
        uid=$(probe "$id" uid)
        [ -n "$uid" ] && [ "$uid" != 0 ] || fail "strict build $id ran as uid '$uid'"
        expect_probe "$id" write-var-lib no
        expect_probe "$id" write-srv no
    fi
    rm -f "$srv/by-sandbox-probe"
    ct rm -f /var/lib/by-sandbox-probe
done

step "cancel stops a sandboxed build's service: the setsid daemon dies too"
id=$(submit sandbox-long)
service=buildyard-build-w4-$id.service
service_holds() { ct systemd-cgls --no-pager -u "$service" | grep -c "sleep 301" | grep -qx 2; }
wait_for "$service to hold the step and its setsid daemon" 30 service_holds
[ "$(ct systemctl show -P KillMode "$service")" = control-group ] || fail "$service: KillMode"
[[ " $(ct systemctl show -P BindsTo "$service") " == *" buildyard-worker@w4.service "* ]] ||
    fail "$service is not bound to the worker"
cancel_kills "$id" "$service" "sleep 301"

step "a step that kills its step host ends the build exception, and nothing of it is left"
id=$(final "$(submit sandbox-killhost)")
[ "$(build_prop "$id" Result)" = exception ] || fail "build $id: $(build_prop "$id" Result)"
ct buildyardctl log "$id" | grep -q "step host went away during step 1" || fail "no line on the lost host in the log of $id"
wait_for "the processes of build $id gone" 20 sh -c "! nsenter -t $leader -a pgrep -f 'sleep 303'"
[ "$(ct systemctl show -P ActiveState "buildyard-build-w4-$id.service")" != active ] || fail "the service of $id is still active"

step "timeout = 2 ends a sandboxed build failure too"
id=$(final "$(submit sandbox-slow)")
[ "$(build_prop "$id" Result)" = failure ] || fail "build $id: $(build_prop "$id" Result)"
ct buildyardctl log "$id" | grep -q "took longer than its timeout of 2 s" || fail "no timeout line in the log of $id"
[ "$(ct systemctl show -P ActiveState "buildyard-build-w4-$id.service")" != active ] || fail "the service of $id is still active"

step "20 trials: kill -9 of the worker, the rerun starts after the first run is gone"
n=0
for round in 1 2 3 4 5; do
    ids=()
    logs=()
    i=0
    for w in w1 w2 w3 w4; do
        mode=sleep
        [ $(((i + round) % 2)) = 1 ] && mode=stubborn
        log=/srv/test/trial-$n.log
        ids+=("$(submit "b-$w" log "$log" mode "$mode")")
        logs+=("$srv/trial-$n.log")
        n=$((n + 1))
        i=$((i + 1))
    done
    for k in 0 1 2 3; do wait_for "trial ${logs[$k]} ready" 20 log_has "${logs[$k]}" "ready ${ids[$k]}"; done
    # One call for all four: each nsenter is slow on a loaded machine, and
    # the steps run for only 3 s.
    # No check of Result right after the kill: the restarted worker reports
    # what its earlier run left within a second, and the build may end retry
    # at once. That each first run was still running when its worker died
    # shows below: it was rerun, which a finished build never is.
    ct sh -c 'for w in w1 w2 w3 w4; do kill -KILL "$(systemctl show -P MainPID "buildyard-worker@$w.service")"; done'
    for k in 0 1 2 3; do
        last=$(final "${ids[$k]}")
        [ "$last" != "${ids[$k]}" ] || fail "build ${ids[$k]} was not rerun"
        [ "$(build_prop "$last" Result)" = success ] || fail "rerun $last: $(build_prop "$last" Result)"
        starts=$(grep '^start' "${logs[$k]}")
        [ "$(echo "$starts" | wc -l)" = 2 ] || fail "${logs[$k]}: $starts"
        [ "$(echo "$starts" | tail -1)" = "start $last alive:" ] ||
            fail "rerun $last started beside the first run: $starts"
        left=$(alive "${logs[$k]}" "${ids[$k]}")$(alive "${logs[$k]}" "$last")
        [ -z "$left" ] || fail "${logs[$k]}: processes left: $left"
    done
    echo "round $round: 4 trials passed"
done

# In the trials systemd usually stops a killed worker's scopes itself
# (BindsTo=) before the worker is back, so whether the worker found one to
# stop depends on timing. Here a scope is left for it on purpose: a build
# scope of w1's name, holding a process, while w1 restarts.
step "a restarted worker stops the build units (scopes and services) an earlier run left"
leftover=buildyard-build-w1-999.scope
left_service=buildyard-build-w1-998.service
ct sh -c "systemd-run --scope --unit=$leftover sleep 300 </dev/null >/dev/null 2>&1 &"
ct systemd-run --unit=$left_service sleep 302 >/dev/null 2>&1
unit_active() { [ "$(ct systemctl show -P ActiveState "$1")" = active ]; }
wait_for "$leftover active" 20 unit_active "$leftover"
wait_for "$left_service active" 20 unit_active "$left_service"
ct systemctl restart buildyard-worker@w1.service
wait_for "w1 idle again" 30 worker_state_is w1 idle
for unit in $leftover $left_service; do
    ! unit_active "$unit" || fail "$unit is still active after w1 restarted"
    ct journalctl --no-pager -o cat -u buildyard-worker@w1.service | grep -qF "stopping $unit, left by an earlier run of this worker" ||
        fail "w1 did not say it stopped $unit"
done
if ct pgrep -f "^sleep 30[02]" >/dev/null; then fail "the leftovers' processes live: $(ct pgrep -af '^sleep 30[02]')"; fi
echo "PASS"
