#!/bin/bash
# The CTest fixture of the docker tests: one private Podman service (see
# tests/lib/podman.sh) with the test images, shared by the GoogleTest tests
# of the docker client and backend.
#
#   fixture.sh start STATEFILE WORKERD   starts it, builds the images from
#                                        WORKERD, writes its directory to STATEFILE
#   fixture.sh stop STATEFILE            stops it and removes everything
#
# Images: localhost/buildyard-worker:test (runs buildyard-workerd --latent)
# and localhost/buildyard-worker:entry (an entrypoint of its own).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/podman.sh
source "$here/../lib/podman.sh"

stop() {
    local state=$1 dir
    [ -s "$state" ] || return 0
    dir=$(cat "$state")
    podman_stop "$dir"
    rm -f "$state"
}

case "$1" in
start)
    state=$2 workerd=$3
    stop "$state"  # a run that died before its cleanup
    # Short and under /tmp: a unix socket path holds at most 107 bytes.
    dir=$(mktemp -d /tmp/buildyard-podman-XXXXXX)
    echo "$dir" >"$state"
    podman_start "$dir"
    "$here/make-image.sh" "$dir" "$workerd" localhost/buildyard-worker:test
    "$here/make-image.sh" "$dir" "$workerd" localhost/buildyard-worker:entry --entrypoint
    ;;
stop)
    stop "$2"
    ;;
*)
    echo "usage: $0 start STATEFILE WORKERD | stop STATEFILE" >&2
    exit 2
    ;;
esac
