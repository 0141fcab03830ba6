#!/bin/bash
# The Debian package, end to end:
#   1. build it with dpkg-buildpackage -us -uc -b from a copy of the source
#      tree (the git-tracked and not ignored files), so the tree gets nothing;
#   2. lintian: no errors (warnings are printed, and noted in
#      debian/buildyard.lintian-overrides);
#   3. install, remove and purge it in a throwaway copy of this machine: an
#      overlayfs over / with its upper layer on a tmpfs, in private mount,
#      PID and network namespaces, chrooted (packaging-inside.sh does the
#      checking there). No systemd runs there, as on a machine being set up.
#   4. the same under a running systemd, booted in a container on another
#      such overlay (packaging-systemd.sh): nothing starts on install, an
#      upgrade restarts what runs, a removal stops it.
#   5. the host is as it was: no package, no user, no files.
#   test-deb.sh SOURCE_DIR
# Exit 77 (skipped) without root or the packaging tools (.ci/install-deps).
set -euo pipefail
src=$(realpath "$1")
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")

[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
for tool in dpkg-buildpackage dh lintian unshare chroot systemd-nspawn nsenter; do
    command -v "$tool" >/dev/null || { echo "needs $tool (bash .ci/install-deps)"; exit 77; }
done

work=$(mktemp -d /tmp/by-deb-XXXXXX)
# Everything the test makes is in $work; the overlays and their mounts live
# in mount namespaces that end with their last process. nspawn leaves empty
# cgroups behind; remove them, deepest first.
cleanup() {
    for cg in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
        for top in payload supervisor; do
            # Busy ones (another container's) stay.
            [ ! -d "$cg/$top" ] || find "$cg/$top" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

# What the host has before, to compare at the end.
host_state() {
    dpkg-query -W -f='${db:Status-Abbrev}\n' buildyard 2>/dev/null || echo "not known to dpkg"
    getent passwd buildyard || true
    getent group buildyard || true
    ls -d /usr/sbin/buildyard-masterd /usr/lib/systemd/system/buildyard-masterd.service \
        /etc/buildyard /var/lib/buildyard 2>/dev/null || true
}
host_state >"$work/host-before"

step "copy the source tree"
mkdir "$work/src"
if git -c safe.directory="$src" -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and untracked-but-not-ignored files: what a commit would hold
    # (build directories are ignored). Files deleted in the work tree are skipped.
    git -c safe.directory="$src" -C "$src" ls-files -z --cached --others --exclude-standard |
        tar -C "$src" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$work/src" -xf -
else
    tar -C "$src" --exclude=./.git --exclude='./build*' -cf - . | tar -C "$work/src" -xf -
fi
[ -f "$work/src/debian/control" ] || fail "no debian/control in the copy of $src"

step "dpkg-buildpackage -us -uc -b"
if ! (cd "$work/src" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
        >"$work/build.log" 2>&1; then
    tail -60 "$work/build.log" >&2
    fail "dpkg-buildpackage failed"
fi
deb=$(ls "$work"/buildyard_*.deb)
cockpit_deb=$(ls "$work"/cockpit-buildyard_*.deb)
changes=$(ls "$work"/buildyard_*.changes)
if [ ! -f "$deb" ] || [ ! -f "$cockpit_deb" ] || [ ! -f "$changes" ]; then
    fail "no .deb (buildyard and cockpit-buildyard) or .changes"
fi
echo "built $(basename "$deb")"

step "lintian"
# Errors fail the test; warnings are shown. Running as root draws a notice.
lintian_rc=0
lintian --fail-on error "$changes" >"$work/lintian.log" 2>&1 || lintian_rc=$?
grep -v 'root privileges is not recommended' "$work/lintian.log" || true
[ "$lintian_rc" = 0 ] || fail "lintian found errors"

step "install, remove and purge on a throwaway copy of this machine"
mkdir "$work/ovl" "$work/root"
cp "$here/packaging-inside.sh" "$here/../lint/verify-units.sh" "$work/"
# The man pages and units the source tree has: each must be in the package.
find "$work/src/man" -maxdepth 1 -type f -name '*.[1-8]' -printf '%f\n' | sort >"$work/man-pages"
find "$work/src/units" -maxdepth 1 -type f -name '*.in' -printf '%f\n' | sed 's/\.in$//' | sort >"$work/units"
# shellcheck disable=SC2016 # expanded by the inner shell
timeout 300 unshare --mount --pid --net --ipc --uts --fork --propagation private -- /bin/bash -c '
    set -e
    w=$1
    mount -t tmpfs -o mode=0755 tmpfs "$w/ovl"
    mkdir "$w/ovl/upper" "$w/ovl/work"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$w/ovl/upper,workdir=$w/ovl/work" "$w/root"
    mount -t proc proc "$w/root/proc"
    mount --rbind /dev "$w/root/dev"
    mount --rbind /sys "$w/root/sys"
    # An empty /run: no /run/systemd/system, so the maintainer scripts see
    # no running systemd, as on a machine being installed.
    mount -t tmpfs -o mode=0755 tmpfs "$w/root/run"
    exec chroot "$w/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive /bin/bash "$w/packaging-inside.sh" "$w" "$2" "$3"
' by-deb "$work" "$deb" "$cockpit_deb" </dev/null || fail "the install/remove/purge checks failed"

step "install, upgrade and remove under a running systemd"
timeout 300 unshare --mount --propagation private -- \
    /bin/bash "$here/packaging-systemd.sh" "$work" "$deb" </dev/null || fail "the checks under systemd failed"

step "the host is untouched"
host_state >"$work/host-after"
diff -u "$work/host-before" "$work/host-after" || fail "the host changed"
echo "PASS"
