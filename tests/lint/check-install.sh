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
expect "$bindir/buildyardctl"
expect "$prefix/lib/systemd/system/buildyard-masterd.service"
expect "$prefix/lib/systemd/system/buildyard-worker@.service"
expect "$prefix/lib/systemd/system/buildyard-workers.target"
expect "$prefix/lib/systemd/system/buildyard.target"
expect "$prefix/lib/systemd/system-generators/buildyard-generator"
expect "$prefix/lib/sysusers.d/buildyard.conf"
expect "$prefix/share/dbus-1/interfaces/org.buildyard.Master1.xml"
expect "$prefix/share/man/man8/buildyard-masterd.8"
expect "$prefix/share/man/man5/buildyard.ini.5"
expect "$prefix/share/man/man1/buildyardctl.1"
expect "/etc/buildyard/master.ini"
[ -e "$dest/usr/share/dbus-1/system.d/org.buildyard.Master1.conf" ] ||
    [ -e "$dest/etc/dbus-1/system.d/org.buildyard.Master1.conf" ] ||
    { echo "bus policy not installed where dbus-daemon reads it" >&2; exit 1; }
grep -qx "ExecStart=$sbindir/buildyard-masterd" "$dest$prefix/lib/systemd/system/buildyard-masterd.service" \
    || { echo "buildyard-masterd.service does not start $sbindir/buildyard-masterd" >&2; exit 1; }
echo "install layout OK"
