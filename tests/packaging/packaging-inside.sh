#!/bin/bash
# Run by test-deb.sh as root inside a throwaway overlay of the machine: install
# the .deb, check where everything landed and that nothing started or was
# enabled, then remove and purge it and check what is left.
#   packaging-inside.sh WORK_DIR DEB COCKPIT_DEB
# WORK_DIR holds the lists "units" and "man-pages" (from the source tree).
set -euo pipefail
work=$1 deb=$2 cockpit_deb=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
unitdir=/usr/lib/systemd/system

# Paths named *buildyard* where the package, its scripts or its services
# write, to compare before and after. Not all of /var: the lower layer is the
# live host, where other tests may be making such names (libvirt's logs).
buildyard_paths() {
    { find /etc /usr /var/lib/systemd /var/lib/dpkg /var/lib/buildyard* -xdev \
        -name '*buildyard*' -print 2>/dev/null || true; } | sort
}
buildyard_paths >"$work/paths-before"
sum_users() { sha256sum /etc/passwd /etc/group; }

step "dpkg -i $(basename "$deb")"
[ ! -d /run/systemd/system ] || fail "systemd seems to run here"
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i failed"; }
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' buildyard)" = "ii " ] || fail "buildyard is not installed"
dpkg-query -L buildyard | sort >"$work/files"
# Plain files and links only, not the directories other packages share.
while read -r p; do [ -d "$p" ] && [ ! -L "$p" ] || echo "$p"; done <"$work/files" >"$work/package-files"

step "every file is in its FHS place"
allowed='^(/usr/bin/|/usr/sbin/|/usr/lib/systemd/system/|/usr/lib/systemd/system-generators/|/usr/lib/sysusers\.d/|/usr/lib/tmpfiles\.d/|/usr/share/dbus-1/system\.d/|/usr/share/dbus-1/interfaces/|/usr/share/man/man[1-8]/|/usr/share/doc/buildyard/|/usr/share/lintian/overrides/|/etc/buildyard/)'
if bad=$(grep -Ev "$allowed" "$work/package-files"); then
    fail "files outside the expected places: $bad"
fi
expect() { [ -e "$1" ] || fail "not installed: $1"; }
for f in /usr/sbin/buildyard-masterd /usr/sbin/buildyard-workerd /usr/bin/buildyardctl \
    /usr/lib/systemd/system-generators/buildyard-generator \
    /usr/share/dbus-1/system.d/org.buildyard.Master1.conf \
    /usr/share/dbus-1/interfaces/org.buildyard.Master1.xml \
    /usr/lib/sysusers.d/buildyard.conf \
    /usr/share/doc/buildyard/copyright /usr/share/doc/buildyard/examples/master.ini \
    /etc/buildyard/master.ini; do
    expect "$f"
done
[ -x /usr/lib/systemd/system-generators/buildyard-generator ] || fail "the generator is not executable"
while read -r unit; do expect "$unitdir/$unit"; done <"$work/units"
while read -r page; do expect "/usr/share/man/man${page##*.}/$page.gz"; done <"$work/man-pages"
echo "$(wc -l <"$work/package-files") files, $(wc -l <"$work/units") units, $(wc -l <"$work/man-pages") man pages"

step "each unit starts a program of the package, in /usr/bin or /usr/sbin"
for unit in "$unitdir"/buildyard*; do
    while read -r prog; do
        case $prog in
        /usr/bin/*|/usr/sbin/*) ;;
        *) fail "$(basename "$unit"): ExecStart=$prog is not in /usr/bin or /usr/sbin" ;;
        esac
        [ -x "$prog" ] || fail "$(basename "$unit"): $prog is not installed"
        grep -qx "$prog" "$work/package-files" || fail "$(basename "$unit"): $prog is not this package's"
    done < <(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$unit")
done

step "/etc/buildyard/master.ini is a conffile"
dpkg-query -W -f='${Conffiles}\n' buildyard | grep -q '^ /etc/buildyard/master.ini ' \
    || fail "/etc/buildyard/master.ini is not a conffile"

step "the postinst made the user and group buildyard"
getent passwd buildyard >/dev/null || fail "no user buildyard"
getent group buildyard >/dev/null || fail "no group buildyard"
[ "$(getent passwd buildyard | cut -d: -f7)" = /usr/sbin/nologin ] || fail "buildyard has a login shell"

step "nothing is enabled; purge will know the [Install] links"
if links=$(find /etc/systemd/system -name 'buildyard*' | grep .); then
    fail "enabled on install: $links"
fi
for unit in buildyard-masterd.service buildyard.target; do
    [ -e "/var/lib/systemd/deb-systemd-helper-enabled/$unit.dsh-also" ] || fail "no deb-systemd-helper state for $unit"
done

step "systemd-analyze verify the installed units"
for unit in "$unitdir"/buildyard*; do
    name=$(basename "$unit")
    # A template is verified through an instance.
    [[ $name == *@.* ]] && name=${name/@./@packaging.}
    # verify-units.sh (tests/lint) judges only our units' own findings:
    # verify also loads the machine's other units, whose warnings (e.g.
    # OpenStack's "keystone.service: Dependency After=keystone.service is
    # dropped.") say nothing about ours.
    bash "$work/verify-units.sh" systemd-analyze "$name" || fail "verify $name (above)"
done

step "the installed programs run: check the sample config, run the generator"
buildyard-masterd --check-config >/dev/null || fail "buildyard-masterd --check-config rejects the shipped master.ini"
buildyardctl --help >/dev/null || fail "buildyardctl --help"
gen=$(mktemp -d)
/usr/lib/systemd/system-generators/buildyard-generator "$gen/normal" "$gen/early" "$gen/late" \
    || fail "the generator failed"
for w in bot1 bot2; do
    link=$gen/normal/buildyard-workers.target.wants/buildyard-worker@$w.service
    [ "$(readlink "$link")" = "$unitdir/buildyard-worker@.service" ] || fail "generator: $link"
done
rm -rf "$gen"

step "dpkg -i again (the upgrade path): the admin's master.ini stays, nothing is enabled"
printf '\n[worker packaging]\ntype = local\n' >>/etc/buildyard/master.ini
edited=$(sha256sum /etc/buildyard/master.ini)
dpkg -i "$deb" >"$work/dpkg-i2.log" 2>&1 || { cat "$work/dpkg-i2.log" >&2; fail "dpkg -i over itself failed"; }
[ "$(sha256sum /etc/buildyard/master.ini)" = "$edited" ] || fail "reinstalling replaced the edited master.ini"
if links=$(find /etc/systemd/system -name 'buildyard*' | grep .); then
    fail "enabled on upgrade: $links"
fi

step "dpkg -r: only the conffile stays"
# State the services would have made, and an admin's enabling, for purge.
mkdir -p /var/lib/buildyard /var/lib/buildyard-worker/bot1/hello /var/lib/buildyard-latent
touch /var/lib/buildyard/buildyard.db
systemctl enable buildyard.target >/dev/null 2>&1 || fail "systemctl enable buildyard.target (offline)"
enabled_link=/etc/systemd/system/multi-user.target.wants/buildyard.target
[ -L "$enabled_link" ] || fail "systemctl enable made no $enabled_link"
users=$(sum_users)
dpkg -r buildyard >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log" >&2; fail "dpkg -r failed"; }
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' buildyard)" = "rc " ] || fail "buildyard not in state rc after dpkg -r"
while read -r p; do
    [ "$p" = /etc/buildyard/master.ini ] && continue
    [ ! -e "$p" ] || fail "left after dpkg -r: $p"
done <"$work/package-files"
expect /etc/buildyard/master.ini

step "dpkg -P: nothing of the package is left"
dpkg -P buildyard >"$work/dpkg-p.log" 2>&1 || { cat "$work/dpkg-p.log" >&2; fail "dpkg -P failed"; }
dpkg-query -W -f='${db:Status-Abbrev}' buildyard >/dev/null 2>&1 && fail "dpkg still knows buildyard after purge"
[ ! -e "$enabled_link" ] || fail "purge left $enabled_link"
buildyard_paths >"$work/paths-after"
diff -u "$work/paths-before" "$work/paths-after" || fail "paths named buildyard left after purge (above)"
# The user stays, as Debian does with system users: files it owns may
# remain elsewhere. Nothing else in passwd or group changed.
[ "$(sum_users)" = "$users" ] || fail "purge changed /etc/passwd or /etc/group"
getent passwd buildyard >/dev/null || fail "purge removed the user buildyard"
step "cockpit-buildyard: the page in /usr/share/cockpit/buildyard, and nothing left after purge"
dpkg -i "$cockpit_deb" >"$work/dpkg-i-cockpit.log" 2>&1 || { cat "$work/dpkg-i-cockpit.log" >&2; fail "dpkg -i cockpit-buildyard failed"; }
for f in manifest.json index.html buildyard.js buildyard.css; do
    expect "/usr/share/cockpit/buildyard/$f"
done
/usr/bin/python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); assert m["tools"]["index"]["path"] == "index.html"' \
    /usr/share/cockpit/buildyard/manifest.json || fail "the page's manifest.json is not what Cockpit reads"
if bad=$(dpkg-query -L cockpit-buildyard | grep -Ev '^(/\.|/usr|/usr/share|/usr/share/cockpit|/usr/share/cockpit/buildyard(/.*)?|/usr/share/doc|/usr/share/doc/cockpit-buildyard(/.*)?|/usr/share/lintian(/.*)?)$'); then
    fail "cockpit-buildyard files outside its places: $bad"
fi
dpkg -P cockpit-buildyard >"$work/dpkg-p-cockpit.log" 2>&1 || { cat "$work/dpkg-p-cockpit.log" >&2; fail "dpkg -P cockpit-buildyard failed"; }
[ ! -e /usr/share/cockpit/buildyard ] || fail "purge left /usr/share/cockpit/buildyard"
echo "PASS inside"
