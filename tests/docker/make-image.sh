#!/bin/bash
# Builds the docker backend's test image offline (there is no registry):
# a folder holding buildyard-workerd, the libraries it loads, the loader,
# and busybox (static) as /bin/sh and the usual tools so build steps can run,
# imported into a private Podman's storage (tests/lib/podman.sh).
#
#   make-image.sh PODMAN_DIR WORKERD [IMAGE] [--entrypoint]
#
# IMAGE defaults to localhost/buildyard-worker:test. With --entrypoint the
# image also gets an entrypoint of its own (a wrapper that says so in the
# log, then runs `buildyard-workerd --latent`), as an admin's image may.
# Build steps run with busybox's sh, so keep the tests' steps to its tools.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/podman.sh
source "$here/../lib/podman.sh"
# shellcheck source=../lib/worker-libraries.sh
source "$here/../lib/worker-libraries.sh"

podman_dir=$1
workerd=$2
image=${3:-localhost/buildyard-worker:test}
entrypoint=${4:-}

root=$(mktemp -d /tmp/buildyard-image-XXXXXX)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,usr/local/bin,etc,tmp,var/lib/buildyard-worker,root,proc,sys,dev}
chmod 1777 "$root/tmp"
install -m 0755 "$workerd" "$root/usr/local/bin/buildyard-workerd"

# Every library at the path the loader finds it (the loader too), symlinks resolved.
libs=$(worker_libraries "$workerd")
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"

changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
if [ "$entrypoint" = --entrypoint ]; then
    # TEST_EXIT_STATUS (set through docker.env) makes it print TEST_LINES
    # numbered lines and exit with that status instead: a worker that dies
    # before it attaches, with a long log.
    cat >"$root/usr/local/bin/start-worker" <<'SH'
#!/bin/sh
echo "started by the image's own entrypoint"
if [ -n "${TEST_EXIT_STATUS:-}" ]; then
    i=1
    while [ "$i" -le "${TEST_LINES:-0}" ]; do
        echo "line $i"
        i=$((i + 1))
    done
    exit "$TEST_EXIT_STATUS"
fi
exec buildyard-workerd --latent "$@"
SH
    chmod 0755 "$root/usr/local/bin/start-worker"
    changes+=(--change 'ENTRYPOINT ["/usr/local/bin/start-worker"]')
fi

tar -C "$root" -c . | podman_cmd "$podman_dir" import --quiet "${changes[@]}" - "$image" >/dev/null
echo "$image"
