#!/bin/bash
# Buildyard under real systemd: boots systemd as PID 1 in a container (the
# host's /usr, an empty /etc on tmpfs), with the project
# installed into a staging directory laid over the install prefix, and
# drives it with systemctl, busctl, journalctl and buildyardctl.
#   test-units.sh BUILD_DIR PREFIX
# Exit 77 (skipped) without root or systemd-nspawn.
set -euo pipefail
build=$(realpath "$1")
prefix=$2

. "$(dirname "${BASH_SOURCE[0]}")/../lib/nspawn.sh"
nspawn_test -n 300
work=$(mktemp -d /tmp/by-systemd-XXXXXX)

. "$(dirname "${BASH_SOURCE[0]}")/../lib/master-calls.sh"
submit() { prop "$(master_call SubmitBuild 'sa{ss}' "$1" 0 | cut -d' ' -f2 | tr -d '"')" org.buildyard.Build1 Id; }
main_pid() { ct systemctl show -P MainPID "$1"; }
restarts() { ct systemctl show -P NRestarts "$1"; }
restarted_since() { [ "$(restarts "$1")" -gt "$2" ]; }

# --- Stage the install and write the container's config -------------------
stage=$work/stage
DESTDIR=$stage cmake --install "$build" >/dev/null
[ -x "$stage$prefix/lib/systemd/system-generators/buildyard-generator" ] || fail "generator not installed"

etc=$work/etc-buildyard
mkdir -p "$etc/master.d" "$etc/workers"
cat >"$etc/master.ini" <<'INI'
[master]
name = systemd-test
listen =

[worker bot1]
type = local

[worker bot2]
type = local

; A latent worker on libvirt's test driver (in-process: no libvirtd here),
; for buildyard-latentd under systemd. No builder uses it.
[worker vm1]
type = latent
backend = libvirt
master_address = 127.0.0.1:9989
libvirt.uri = test:///default
libvirt.xml = /etc/buildyard/vm1.xml
libvirt.shutdown_timeout = 0

[builder hello]
workers = bot1, bot2
step.1 = echo hello from $BUILDYARD_WORKER

; Builds that wait for /run/by-go, pinned to one worker each.
[builder wait1]
workers = bot1
step.1 = while [ ! -e /run/by-go ]; do sleep 0.1; done; echo released

[builder wait2]
workers = bot2
step.1 = while [ ! -e /run/by-go ]; do sleep 0.1; done; echo released
INI

cat >"$etc/vm1.xml" <<'XML'
<domain type='test'>
  <name>template</name>
  <memory unit='MiB'>128</memory>
  <os><type>hvm</type></os>
</domain>
XML

units=$work/etc-systemd-system
mkdir -p "$units/buildyard-worker@bot1.service.d"
# A short watchdog for bot1, so a frozen bot1 is killed quickly.
cat >"$units/buildyard-worker@bot1.service.d/50-test.conf" <<'CONF'
[Service]
WatchdogSec=2s
TimeoutAbortSec=3s
RestartSec=1s
CONF

# dbus-daemon reads the admin's policies from /etc/dbus-1/system.d.
policy=$(find "$stage" -name org.buildyard.Master1.conf -path '*system.d*' | head -1)
[ -n "$policy" ] || fail "bus policy not installed"
latent_policy=$(find "$stage" -name org.buildyard.Latent1.conf -path '*system.d*' | head -1)
[ -n "$latent_policy" ] || fail "latentd's bus policy not installed"

# --- Boot ------------------------------------------------------------------
step "boot systemd in a container"
nspawn_boot "$work/nspawn.log" -D / --volatile=yes -M by-systemd-test -b --register=no --keep-unit --console=read-only \
    --private-network \
    --overlay-ro="$prefix:$stage$prefix:$prefix" \
    --bind="$etc:/etc/buildyard" \
    --bind="$units:/etc/systemd/system" \
    --bind-ro="$policy:/etc/dbus-1/system.d/org.buildyard.Master1.conf" \
    --bind-ro="$latent_policy:/etc/dbus-1/system.d/org.buildyard.Latent1.conf" \
    -- "${nspawn_init_args[@]}"

step "the generator made buildyard-workers.target want the local workers"
wants=$(ct systemctl show -P Wants buildyard-workers.target)
for w in bot1 bot2; do
    [[ " $wants " == *" buildyard-worker@$w.service "* ]] || fail "buildyard-workers.target wants: $wants"
done

step "systemctl start buildyard-workers.target starts the master and both workers"
ct systemctl start buildyard-workers.target ||
    fail "cannot start buildyard-workers.target; jobs: $(ct systemctl list-jobs --no-pager 2>&1); $(ct systemctl show -p After buildyard-workers.target)"
[ "$(ct systemctl is-active buildyard-masterd.service)" = active ] || fail "the master is not active"
[ "$(ct systemctl show -P User buildyard-masterd.service)" = buildyard ] || fail "the master is not User=buildyard"
# Attaching proves the master (uid buildyard) read each root worker's unit.
wait_for "bot1 idle" 20 worker_state_is bot1 idle
wait_for "bot2 idle" 20 worker_state_is bot2 idle

step "systemctl status shows the STATUS= line"
status_text=$(ct systemctl show -P StatusText buildyard-masterd.service)
[ -n "$status_text" ] || fail "no StatusText"
ct systemctl status --no-pager buildyard-masterd.service | grep -qF "Status: \"$status_text\"" \
    || fail "systemctl status does not show the status line"
echo "status: $status_text"

step "a build runs (buildyardctl submit --wait)"
out=$(ct buildyardctl submit hello --wait) || fail "buildyardctl submit --wait: $out"
[[ "$out" == *success* ]] || fail "build did not succeed: $out"

step "the D-Bus policy: others read, but may not SubmitBuild or Pause"
nobody() { ct setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
nobody busctl --system get-property org.buildyard.Master1 /org/buildyard/Master1 org.buildyard.Master1 Version \
    >/dev/null || fail "nobody cannot read Version"
if err=$(nobody busctl --system call org.buildyard.Master1 /org/buildyard/Master1 org.buildyard.Master1 \
        SubmitBuild 'sa{ss}' hello 0 2>&1); then
    fail "nobody could SubmitBuild"
fi
[[ "$err" == *"ccess denied"* || "$err" == *AccessDenied* ]] || fail "SubmitBuild as nobody: $err"
if err=$(nobody busctl --system call org.buildyard.Master1 "$(worker_path bot1)" org.buildyard.Worker1 \
        Pause s test 2>&1); then
    fail "nobody could Pause"
fi
[[ "$err" == *"ccess denied"* || "$err" == *AccessDenied* ]] || fail "Pause as nobody: $err"

step "a frozen worker is killed by its watchdog, restarted, and its build is rerun"
id=$(submit wait1)
wait_for "build $id running" 20 build_state_is "$id" running
before=$(restarts buildyard-worker@bot1.service)
pid=$(main_pid buildyard-worker@bot1.service)
ct kill -STOP "$pid"
wait_for "bot1 restarted" 30 restarted_since buildyard-worker@bot1.service "$before"
wait_for "build $id finished" 20 build_state_is "$id" finished
[ "$(build_prop "$id" Result)" = retry ] || fail "build $id: $(build_prop "$id" Result), not retry"
rerun=$(build_prop "$id" RetriedAs)
[ "$rerun" -gt "$id" ] || fail "build $id has no rerun"
wait_for "bot1 attached again" 30 worker_state_is bot1 building
[ "$(main_pid buildyard-worker@bot1.service)" != "$pid" ] || fail "bot1 has the same pid"
ct journalctl -u buildyard-worker@bot1.service --no-pager | grep -qi watchdog || fail "no watchdog in bot1's journal"
ct touch /run/by-go
wait_for "rerun $rerun finished" 20 build_state_is "$rerun" finished
[ "$(build_prop "$rerun" Result)" = success ] || fail "rerun $rerun: $(build_prop "$rerun" Result)"
ct rm /run/by-go

step "systemctl stop of a worker mid-build ends its build retry"
id=$(submit wait2)
wait_for "build $id running" 20 build_state_is "$id" running
ct systemctl stop buildyard-worker@bot2.service
[ "$(build_prop "$id" State)" = finished ] || fail "build $id still $(build_prop "$id" State) after stop"
[ "$(build_prop "$id" Result)" = retry ] || fail "build $id: $(build_prop "$id" Result), not retry"
worker_state_is bot2 offline || fail "bot2 not offline after stop"
rerun=$(build_prop "$id" RetriedAs)
ct systemctl start buildyard-workers.target
ct touch /run/by-go
wait_for "rerun $rerun finished" 30 build_state_is "$rerun" finished
[ "$(build_prop "$rerun" Result)" = success ] || fail "rerun $rerun: $(build_prop "$rerun" Result)"

step "a worker added in a drop-in: systemctl reload, then daemon-reload starts it"
printf '[worker bot3]\ntype = local\n' >"$etc/master.d/50-bot3.ini"
ct systemctl reload buildyard-masterd.service
wait_for "bot3 declared" 10 worker_path bot3
worker_state_is bot3 offline || fail "bot3 should be offline before it starts"
ct systemctl daemon-reload
[[ " $(ct systemctl show -P Wants buildyard-workers.target) " == *" buildyard-worker@bot3.service "* ]] \
    || fail "the generator did not add bot3"
ct systemctl start buildyard-workers.target
wait_for "bot3 idle" 20 worker_state_is bot3 idle

step "the journal tells one worker's story"
story=$(ct journalctl --no-pager -o cat BUILDYARD_WORKER=bot1)
for line in "worker bot1 attached" "worker bot1 detached" "ends retry" "finished: success"; do
    [[ "$story" == *"$line"* ]] || { echo "$story" >&2; fail "journalctl BUILDYARD_WORKER=bot1 lacks '$line'"; }
done
# The lines above name bot1, which the filter matched on; that the field
# selects is shown by what it leaves out: bot2 had the same story.
[[ "$story" != *bot2* ]] || { echo "$story" >&2; fail "journalctl BUILDYARD_WORKER=bot1 shows lines about bot2"; }
[ -n "$(ct journalctl --no-pager -o cat BUILDYARD_WORKER=bot2)" ] || fail "no lines with BUILDYARD_WORKER=bot2"
ids=$(ct journalctl --no-pager -o json BUILDYARD_WORKER=bot1 | grep -o '"MESSAGE_ID":"[0-9a-f]*"' | sort -u)
for id in 6f0b3c1e5a7d4e2b9c8a1d2e3f405161 6f0b3c1e5a7d4e2b9c8a1d2e3f405162 6f0b3c1e5a7d4e2b9c8a1d2e3f405165; do
    [[ "$ids" == *"$id"* ]] || fail "no MESSAGE_ID=$id for bot1"
done

step "buildyard-latentd runs as its own user, starts and stops a machine, reloads"
latent_call() { ct busctl --system call org.buildyard.Latent1 /org/buildyard/Latent1 org.buildyard.Latent1 "$@"; }
ct systemctl start buildyard-latentd.service || fail "cannot start buildyard-latentd.service"
[ "$(ct systemctl show -P User buildyard-latentd.service)" = buildyard-latent ] || fail "latentd is not User=buildyard-latent"
[ "$(ct ps -o user= -p "$(main_pid buildyard-latentd.service)")" = buildyard-latent ] || fail "latentd does not run as buildyard-latent"
ct systemctl status --no-pager buildyard-latentd.service | grep -q "Status: \"0 instances" ||
    fail "systemctl status does not show latentd's STATUS= line"
start_id=0123456789abcdef0123456789abcdef
latent_call Start ssssst vm1 $start_id 127.0.0.1:9989 "$(printf 'a%.0s' $(seq 64))" "" 600000000 >/dev/null ||
    fail "Latent1.Start failed under systemd"
[ "$(latent_call ListInstances | cut -d' ' -f2)" = 1 ] || fail "ListInstances does not list the started machine"
ct systemctl reload buildyard-latentd.service || fail "cannot reload buildyard-latentd.service"
[ "$(restarts buildyard-latentd.service)" = 0 ] || fail "latentd restarted on reload"
latent_call Stop ss vm1 $start_id >/dev/null || fail "Latent1.Stop failed under systemd"
[ "$(latent_call ListInstances | cut -d' ' -f2)" = 0 ] || fail "the machine is still listed after Stop"
# The lines of this start, found by the fields latentd attaches to them
# (not by grepping for the name the filter already matched).
story=$(ct journalctl --no-pager -o cat BUILDYARD_WORKER=vm1 BUILDYARD_START=$start_id _SYSTEMD_UNIT=buildyard-latentd.service)
for line in "starting worker vm1 (start $start_id, backend" "worker vm1 started: instance "; do
    [[ "$story" == *"$line"* ]] ||
        fail "journalctl BUILDYARD_WORKER=vm1 BUILDYARD_START=$start_id lacks '$line': $story $(ct journalctl --no-pager -o verbose -u buildyard-latentd.service | tail -40)"
done

step "systemd-analyze security"
for unit in buildyard-masterd.service buildyard-latentd.service buildyard-worker@bot1.service; do
    ct systemd-analyze security --no-pager "$unit" | tail -1
done
score=$(ct systemd-analyze security --no-pager buildyard-masterd.service | tail -1 | grep -oE '[0-9]+\.[0-9]+' | head -1)
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.5) }' || fail "buildyard-masterd.service exposure $score > 2.5"
score=$(ct systemd-analyze security --no-pager buildyard-latentd.service | tail -1 | grep -oE '[0-9]+\.[0-9]+' | head -1)
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.5) }' || fail "buildyard-latentd.service exposure $score > 2.5"

step "the master stops cleanly"
ct systemctl stop buildyard.target buildyard-workers.target buildyard-masterd.service buildyard-latentd.service
[ "$(ct systemctl show -P Result buildyard-masterd.service)" = success ] || fail "the master did not stop cleanly"
[ "$(ct systemctl show -P Result buildyard-latentd.service)" = success ] || fail "latentd did not stop cleanly"
echo "PASS"
