#!/bin/bash
# cmake --install with DESTDIR puts every file in its FHS place, and the
# installed units name the installed daemons.
#   check-install.sh BUILD_DIR PREFIX SBINDIR BINDIR
set -euo pipefail
build=$1 prefix=$2 sbindir=$3 bindir=$4
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
DESTDIR=$dest cmake --install "$build" >/dev/null
expect() {
    [ -e "$dest$1" ] || { echo "missing after install: $1" >&2; find "$dest" -type f | sed "s|^$dest||" >&2; exit 1; }
}
expect "$sbindir/buildyard-masterd"
expect "$sbindir/buildyard-workerd"
expect "$sbindir/buildyard-latentd"
expect "$bindir/buildyardctl"
expect "$prefix/lib/systemd/system/buildyard-masterd.service"
expect "$prefix/lib/systemd/system/buildyard-worker@.service"
expect "$prefix/lib/systemd/system/buildyard-latentd.service"
expect "$prefix/lib/systemd/system/buildyard-worker-latent.service"
expect "$prefix/lib/systemd/system/buildyard-workers.target"
expect "$prefix/lib/systemd/system/buildyard.target"
expect "$prefix/lib/systemd/system-generators/buildyard-generator"
expect "$prefix/lib/sysusers.d/buildyard.conf"
expect "$prefix/share/dbus-1/interfaces/org.buildyard.Master1.xml"
expect "$prefix/share/dbus-1/interfaces/org.buildyard.Latent1.xml"
expect "$prefix/share/man/man8/buildyard-masterd.8"
expect "$prefix/share/man/man8/buildyard-latentd.8"
expect "$prefix/share/man/man5/buildyard.ini.5"
expect "$prefix/share/man/man1/buildyardctl.1"
expect "/etc/buildyard/master.ini"
for f in manifest.json index.html buildyard.js buildyard.css; do
    expect "$prefix/share/cockpit/buildyard/$f"
done
for policy in org.buildyard.Master1.conf org.buildyard.Latent1.conf; do
    [ -e "$dest/usr/share/dbus-1/system.d/$policy" ] || [ -e "$dest/etc/dbus-1/system.d/$policy" ] ||
        { echo "bus policy $policy not installed where dbus-daemon reads it" >&2; exit 1; }
done
for daemon in buildyard-masterd buildyard-latentd; do
    grep -qx "ExecStart=$sbindir/$daemon" "$dest$prefix/lib/systemd/system/$daemon.service" \
        || { echo "$daemon.service does not start $sbindir/$daemon" >&2; exit 1; }
done
grep -qx "ExecStart=$sbindir/buildyard-workerd --latent" \
    "$dest$prefix/lib/systemd/system/buildyard-worker-latent.service" \
    || { echo "buildyard-worker-latent.service does not start $sbindir/buildyard-workerd --latent" >&2; exit 1; }
echo "install layout OK"
