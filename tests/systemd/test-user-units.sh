#!/bin/bash
# A worker that is not root, under real systemd as PID 1 in a container
# (see test-build-units.sh and tests/lib/nspawn.sh): buildyard-workerd(8)
# says that such a worker runs each build in a transient scope of its
# user's manager when it has one (loginctl enable-linger), and falls back
# to a child subreaper when it has none. Both, as remote workers of a
# master in the same container (plain TCP on the container's loopback):
#  - under the user manager of `by-user` (a lingering user): the build is
#    buildyard-build-u1-ID.scope in user@UID.service, bound to the worker's
#    own user unit; cancel kills a setsid daemon and stops the scope; the
#    worker killed with kill -9 takes its build's processes with it (the
#    scope is bound to its unit), and the build reruns once it is back;
#  - as `by-plain`, a user with no manager: the worker says it uses the
#    subreaper fallback, and its build runs in no unit of its own.
#   test-user-units.sh BUILD_DIR PREFIX
# Exit 77 (skipped) without root or systemd-nspawn.
set -euo pipefail
build=$(realpath "$1")
prefix=$2
source_dir=$(realpath "$(dirname "${BASH_SOURCE[0]}")/../..")

. "$source_dir/tests/lib/nspawn.sh"
nspawn_test -n 200
work=$(mktemp -d /tmp/by-user-units-XXXXXX)
chmod 755 "$work"
ct_timeout=60

. "$source_dir/tests/lib/master-calls.sh"
submit() { prop "$(master_call SubmitBuild 'sa{ss}' "$1" 0 | cut -d' ' -f2 | tr -d '"')" org.buildyard.Build1 Id; }
build_log() { ct buildyardctl log "$1"; }

stage=$work/stage
DESTDIR=$stage cmake --install "$build" >/dev/null
workerd=$(find "$stage" -name buildyard-workerd -type f | head -1)
[ -n "$workerd" ] || fail "buildyard-workerd not installed"
workerd=${workerd#"$stage"}
srv=$work/srv
mkdir -p "$srv"
chmod 755 "$srv"
for w in u1 p1; do
    printf 'master = 127.0.0.1:9989\npassword = pw-%s\ntls = no\nreconnect_max = 1\n' "$w" >"$srv/$w.ini"
    chmod 644 "$srv/$w.ini"
done

etc=$work/etc-buildyard
mkdir -p "$etc/master.d"
cat >"$etc/master.ini" <<'INI'
[master]
name = user-units-test
listen = 127.0.0.1:9989
tls = no

[worker u1]
password = pw-u1
lost_build_grace = 120

[worker p1]
password = pw-p1

[builder where]
workers = u1
step.1 = id -u; cat /proc/self/cgroup

[builder long]
workers = u1
step.1 = setsid sleep 311 </dev/null >/dev/null 2>&1 & exec sleep 311

[builder plain]
workers = p1
step.1 = id -u; cat /proc/self/cgroup
INI
# The user manager's PAM session: only pam_systemd. Debian's
# /usr/lib/pam.d/systemd-user fails in a container with "Failed to set up
# PAM session: Operation not permitted" (pam_loginuid may not set the audit
# login UID, and pam_limits may not raise limits past the container's).
cat >"$work/pam-systemd-user" <<'PAM'
account  required pam_permit.so
session  optional pam_systemd.so
PAM
policy=$(find "$stage" -name org.buildyard.Master1.conf -path '*system.d*' | head -1)
[ -n "$policy" ] || fail "bus policy not installed"

step "boot systemd in a container"
nspawn_boot "$work/nspawn.log" -D / --volatile=yes -M by-user-units -b --register=no --keep-unit \
    --console=read-only --private-network \
    --overlay-ro="$prefix:$stage$prefix:$prefix" \
    --bind="$etc:/etc/buildyard" \
    --bind-ro="$srv:/srv/test" \
    --bind-ro="$work/pam-systemd-user:/etc/pam.d/systemd-user" \
    --bind-ro="$policy:/etc/dbus-1/system.d/org.buildyard.Master1.conf" \
    -- "${nspawn_init_args[@]}"
ct systemctl start buildyard-masterd.service || fail "cannot start buildyard-masterd.service"

step "a lingering user gets a user manager"
ct useradd --create-home --uid 4242 by-user
ct useradd --create-home --uid 4243 by-plain
ct loginctl enable-linger by-user
user_manager_up() { [ "$(ct systemctl show -P ActiveState user@4242.service)" = active ]; }
wait_for "user@4242.service" 60 user_manager_up
# as_user COMMAND...: COMMAND as by-user, talking to its manager through
# the manager's private socket (the container has no D-Bus user bus).
as_user() { ct setpriv --reuid=4242 --regid=4242 --init-groups env HOME=/home/by-user XDG_RUNTIME_DIR=/run/user/4242 "$@"; }
um() { as_user systemctl --user "$@"; }

# start_u1: buildyard-workerd --name u1 as a transient service of by-user's
# manager, as `systemd-run --user` starts it from that user's shell.
start_u1() {
    as_user systemd-run --user --unit=by-worker-u1 --collect -p Restart=no \
        "$workerd" --name u1 --config /srv/test/u1.ini --basedir /home/by-user/builds >/dev/null ||
        fail "cannot start the worker under by-user's manager"
}
start_u1
wait_for "u1 idle" 30 worker_state_is u1 idle
u1_log() { ct journalctl --no-pager -o cat _SYSTEMD_USER_UNIT=by-worker-u1.service; }
u1_log | grep -q "its own transient scope" || fail "u1 does not say it runs builds in scopes: $(u1_log)"

step "a build of u1 runs as by-user in a scope of by-user's manager"
id=$(submit where)
wait_for "build $id finished" 30 build_state_is "$id" finished
[ "$(build_prop "$id" Result)" = success ] || fail "build $id: $(build_prop "$id" Result): $(build_log "$id")"
out=$(build_log "$id")
echo "$out" | grep -qx 4242 || fail "build $id did not run as uid 4242: $out"
echo "$out" | grep -q "^[0-9]*:name=systemd:/user.slice/user-4242.slice/user@4242.service/.*buildyard-build-u1-$id.scope$" ||
    echo "$out" | grep -q "^0::/user.slice/user-4242.slice/user@4242.service/.*buildyard-build-u1-$id.scope$" ||
    fail "build $id is not in its scope under user@4242.service: $out"
echo "$out" | grep "buildyard-build" | head -2

step "a running build's scope is bound to the worker's user unit; cancel kills a setsid daemon"
id=$(submit long)
scope=buildyard-build-u1-$id.scope
scope_holds() { um status --no-pager "$scope" | grep -c "sleep 311" | grep -qx 2; }
wait_for "$scope to hold the step and its setsid daemon" 30 scope_holds
[ "$(um show -P ActiveState "$scope")" = active ] || fail "$scope is not active"
[ "$(um show -P KillMode "$scope")" = control-group ] || fail "$scope: KillMode $(um show -P KillMode "$scope")"
[[ " $(um show -P BindsTo "$scope") " == *" by-worker-u1.service "* ]] ||
    fail "$scope is not bound to the worker's unit: $(um show -P BindsTo "$scope")"
ct busctl --system call org.buildyard.Master1 "$(build_path "$id")" org.buildyard.Build1 Cancel
wait_for "build $id finished" 30 build_state_is "$id" finished
[ "$(build_prop "$id" Result)" = cancelled ] || fail "build $id: $(build_prop "$id" Result)"
if ct pgrep -u 4242 -f "sleep 311" >/dev/null; then fail "cancel left: $(ct pgrep -u 4242 -af "sleep 311")"; fi
[ "$(um show -P ActiveState "$scope")" != active ] || fail "$scope still active after the cancel"

step "the worker killed with kill -9 takes its build's processes with it; the build reruns once it is back"
id=$(submit long)
scope=buildyard-build-u1-$id.scope
wait_for "$scope to hold the step and its setsid daemon" 30 scope_holds
main=$(um show -P MainPID by-worker-u1.service)
[ "$main" -gt 0 ] || fail "no main PID for by-worker-u1.service"
ct kill -KILL "$main"
no_sleepers() { ! ct pgrep -u 4242 -f "sleep 311"; }
wait_for "the processes of build $id to be gone with their worker" 15 no_sleepers
wait_for "u1 to be lost" 30 worker_state_is u1 offline
um reset-failed by-worker-u1.service 2>/dev/null || true
start_u1
retried() { [ -n "$(build_prop "$id" RetriedAs | grep -v '^0$')" ]; }
wait_for "build $id to be retried" 60 retried
rerun=$(build_prop "$id" RetriedAs)
[ "$(build_prop "$id" Result)" = retry ] || fail "build $id: $(build_prop "$id" Result)"
wait_for "rerun $rerun to run" 60 build_state_is "$rerun" running
ct busctl --system call org.buildyard.Master1 "$(build_path "$rerun")" org.buildyard.Build1 Cancel
wait_for "build $rerun finished" 30 build_state_is "$rerun" finished
wait_for "the rerun's processes to be gone" 15 no_sleepers

step "a user with no manager: the subreaper fallback, said once, and no unit for the build"
ct systemd-run --unit=by-worker-p1 --collect -p User=by-plain -p Restart=no \
    "$workerd" --name p1 --config /srv/test/p1.ini --basedir /home/by-plain/builds >/dev/null ||
    fail "cannot start the worker as by-plain"
wait_for "p1 idle" 30 worker_state_is p1 idle
p1_log() { ct journalctl --no-pager -o cat -u by-worker-p1.service; }
[ "$(p1_log | grep -c "no XDG_RUNTIME_DIR for a user manager")" = 1 ] || fail "p1 does not say once why it has no manager: $(p1_log)"
p1_log | grep -q "subreaper" || fail "p1 does not say it falls back to a subreaper: $(p1_log)"
id=$(submit plain)
wait_for "build $id finished" 30 build_state_is "$id" finished
[ "$(build_prop "$id" Result)" = success ] || fail "build $id: $(build_prop "$id" Result): $(build_log "$id")"
out=$(build_log "$id")
echo "$out" | grep -qx 4243 || fail "build $id did not run as uid 4243: $out"
if echo "$out" | grep -q "buildyard-build"; then fail "build $id of p1 ran in a build unit: $out"; fi
echo "$out" | grep -q "by-worker-p1.service" || fail "build $id of p1 is not in its worker's unit: $out"
echo "PASS"
