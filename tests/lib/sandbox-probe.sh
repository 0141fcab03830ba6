#!/bin/sh
# A build step that reports what its sandbox lets it do, one line per check
# (tests/systemd/test-build-units.sh reads them).
try() {
    if sh -c "$2" 2>/dev/null; then echo "$1 yes"; else echo "$1 no"; fi
}
echo "uid $(id -u)"
echo "unit $(grep -o 'buildyard-build-[^/]*' /proc/self/cgroup | head -1)"
echo "nonewprivs $(grep '^NoNewPrivs:' /proc/self/status | tr -dc 0-9)"
try write-build-dir 'touch ./probe-step1'
try write-tmp 'echo x >/tmp/by-sandbox-probe'
try write-etc 'touch /etc/by-sandbox-probe'
try write-usr 'touch /usr/by-sandbox-probe'
try write-root-home 'touch /root/by-sandbox-probe'
try write-var-tmp 'touch /var/tmp/by-sandbox-probe'
try write-var-lib 'touch /var/lib/by-sandbox-probe'
try write-srv 'touch /srv/test/by-sandbox-probe'
