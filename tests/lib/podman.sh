#!/bin/bash
# A private Podman service that speaks the Docker Engine API (v1.41) on a
# unix socket, for the docker backend's tests.
# Everything lives under DIR: its storage (images, containers), its run and
# lock state and the socket, so a test never sees or touches any other
# image or container on the machine.
#
#   podman.sh start DIR     starts the service on DIR/docker.sock, waits until
#                           it answers, writes its PID to DIR/service.pid
#   podman.sh stop DIR      removes every container of DIR's storage, stops
#                           the service by its PID, unmounts what it left
#                           mounted under DIR and deletes DIR
#   podman.sh run DIR ARGS  the podman command line on DIR's storage
#
# Also sourced: podman_start, podman_stop and podman_cmd do the same.
# Podman runs containers with runc and cgroupfs here (crun fails on hybrid
# cgroups, and so do the default ulimits).

podman_cmd() {
    local dir=$1
    shift
    CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf" \
        podman --root "$dir/root" --runroot "$dir/run" --tmpdir "$dir/tmp" "$@"
}

podman_start() {
    local dir=$1 i pid driver
    mkdir -p "$dir/root" "$dir/run" "$dir/tmp"
    # File locks under DIR/tmp, not the machine-wide /dev/shm segment, which
    # every fresh --tmpdir would re-initialise under another service's feet.
    cat >"$dir/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
CONF
    # overlay, unless DIR is on overlayfs itself (a container's root), which
    # cannot hold overlay layers: then vfs, slower but anywhere.
    driver=overlay
    [ "$(stat -f -c %T "$dir")" = overlayfs ] && driver=vfs
    cat >"$dir/storage.conf" <<CONF
[storage]
driver = "$driver"
graphroot = "$dir/root"
runroot = "$dir/run"
CONF
    rm -f "$dir/docker.sock"
    # setsid: the service outlives this script (the caller stops it by PID)
    # and a Ctrl-C meant for the test runner does not reach it.
    CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf" \
        setsid podman --root "$dir/root" --runroot "$dir/run" --tmpdir "$dir/tmp" \
        system service --time=0 "unix://$dir/docker.sock" </dev/null >"$dir/service.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/service.pid"
    for ((i = 0; i < 300; i++)); do
        if curl -sf --max-time 2 --unix-socket "$dir/docker.sock" http://d/_ping >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "podman system service exited; its log:" >&2
            cat "$dir/service.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "podman system service did not answer on $dir/docker.sock in 30 s" >&2
    kill -TERM "$pid" 2>/dev/null
    return 1
}

# Unmounts everything mounted under $1 (overlay layers, container /dev/shm),
# deepest first.
podman_unmount_under() {
    local dir=$1 mnt
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r mnt; do
            umount -l "$mnt" 2>/dev/null || true
        done
}

# Whether $1 is the live (not zombie) service of DIR $2: a PID file may
# outlive its process, and the PID may be someone else's by now.
podman_service_alive() {
    local pid=$1 dir=$2 state
    state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/docker.sock"
}

podman_stop() {
    local dir=$1 pid i
    [ -d "$dir" ] || return 0
    if [ -d "$dir/root" ]; then
        timeout 60 bash -c "$(declare -f podman_cmd); podman_cmd '$dir' rm --all --force --time 0" \
            >>"$dir/stop.log" 2>&1 || true
    fi
    pid=$(cat "$dir/service.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && podman_service_alive "$pid" "$dir"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            podman_service_alive "$pid" "$dir" || break
            sleep 0.1
        done
        if podman_service_alive "$pid" "$dir"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    podman_unmount_under "$dir"
    rm -rf "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    case "${1:-}" in
    start) podman_start "$2" ;;
    stop) podman_stop "$2" ;;
    run)
        d=$2
        shift 2
        podman_cmd "$d" "$@"
        ;;
    *)
        echo "usage: $0 start DIR | stop DIR | run DIR ARGS..." >&2
        exit 2
        ;;
    esac
fi
