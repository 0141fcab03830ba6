#!/bin/bash
# Run by test-deb.sh in a private mount namespace: the maintainer scripts
# under a running systemd. Boots systemd (to basic.target, so the host's own
# services stay down) in a container whose root is a throwaway overlay of
# this machine, then: install (nothing enabled or started), start
# buildyard-workers.target with the shipped master.ini, reinstall (an upgrade:
# what ran is restarted), remove (everything stops).
#   packaging-systemd.sh WORK_DIR DEB
set -euo pipefail
work=$1 deb=$2
root=$work/root-systemd
fail() {
    echo "FAIL: $*" >&2
    [ -z "$leader" ] || ct journalctl -b --no-pager -n 80 -o short-monotonic >&2 || true
    exit 1
}
. "$(dirname "${BASH_SOURCE[0]}")/../lib/nspawn.sh"
ct_timeout=60
trap nspawn_stop EXIT
active() { [ "$(ct systemctl is-active "$@" | sort -u)" = active ]; }
inactive() { [ "$(ct systemctl is-active "$@" | sort -u)" = inactive ]; }
pid_of() { ct systemctl show -P MainPID "$1"; }
dpkg_in() { ct env DEBIAN_FRONTEND=noninteractive "$@" >>"$work/dpkg-systemd.log" 2>&1; }

mkdir -p "$work/ovl-systemd" "$root"
mount -t tmpfs -o mode=0755 tmpfs "$work/ovl-systemd"
mkdir "$work/ovl-systemd/upper" "$work/ovl-systemd/work"
mount -t overlay overlay \
    -o "lowerdir=/,upperdir=$work/ovl-systemd/upper,workdir=$work/ovl-systemd/work" "$root"
# nspawn puts a tmpfs on /tmp, so the package goes to /srv. Docker-made
# images refuse service starts in maintainer scripts (policy-rc.d); a real
# machine does not.
mkdir -p "$root/srv/by-deb"
cp "$deb" "$root/srv/by-deb/"
rm -f "$root/usr/sbin/policy-rc.d"
pkg=/srv/by-deb/$(basename "$deb")

step "boot systemd on a throwaway overlay of this machine"
nspawn_boot "$work/nspawn.log" -D "$root" -b -M by-deb-test --register=no --keep-unit --link-journal=no \
    --console=read-only --private-network \
    -- "${nspawn_init_args[@]}" systemd.unit=basic.target

step "dpkg -i: nothing starts, nothing is enabled"
dpkg_in dpkg -i "$pkg" || { cat "$work/dpkg-systemd.log" >&2; fail "dpkg -i"; }
units="buildyard-masterd.service buildyard-masterd.socket buildyard-workers.target buildyard.target"
# shellcheck disable=SC2086 # one word per unit
inactive $units || fail "running after install: $(ct systemctl is-active $units | tr '\n' ' ')"
for unit in $units; do
    [ "$(ct systemctl is-enabled "$unit")" = disabled ] || fail "$unit is $(ct systemctl is-enabled "$unit") after install"
done

step "systemctl start buildyard-workers.target (the shipped master.ini: bot1, bot2)"
ct systemctl start buildyard-workers.target || fail "cannot start buildyard-workers.target"
running="buildyard-masterd.service buildyard-worker@bot1.service buildyard-worker@bot2.service"
# shellcheck disable=SC2086
wait_for "the master and both workers" 30 active $running
master=$(pid_of buildyard-masterd.service)
worker=$(pid_of buildyard-worker@bot1.service)

step "dpkg -i again (an upgrade): what ran is restarted"
dpkg_in dpkg -i "$pkg" || { cat "$work/dpkg-systemd.log" >&2; fail "dpkg -i (upgrade)"; }
# shellcheck disable=SC2086
wait_for "the master and both workers after the upgrade" 30 active $running
[ "$(pid_of buildyard-masterd.service)" != "$master" ] || fail "the master was not restarted"
[ "$(pid_of buildyard-worker@bot1.service)" != "$worker" ] || fail "bot1 was not restarted"

step "dpkg -r: everything stops"
dpkg_in dpkg -r buildyard || { cat "$work/dpkg-systemd.log" >&2; fail "dpkg -r"; }
# shellcheck disable=SC2086
inactive $running || fail "still running after dpkg -r: $(ct systemctl is-active $running | tr '\n' ' ')"
if procs=$(ct pgrep -a buildyard); then
    fail "processes left after dpkg -r: $procs"
fi
dpkg_in dpkg -P buildyard || { cat "$work/dpkg-systemd.log" >&2; fail "dpkg -P"; }
echo "PASS under systemd"
