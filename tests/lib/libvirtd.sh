#!/bin/bash
# A real libvirtd (with its virtlogd) for the tests that boot qemu guests,
# run by hand because the test machines have no systemd as PID 1.
#
#   libvirtd.sh start DIR   starts virtlogd and libvirtd (pid files and logs
#                           in DIR) and waits until qemu:///system answers
#   libvirtd.sh stop DIR    stops both by the PIDs in DIR and removes what
#                           they leave behind
#   libvirtd.sh check       exit 0 if a libvirtd could run here
#
# The daemons serve qemu:///system, whose sockets and run-time state live in
# /run/libvirt whatever we ask (the system URI names that socket), so only
# one such daemon can run per machine: start refuses when another one
# answers. Domains are the caller's to destroy before stop; libvirtd leaves
# running qemu processes alone when it exits.
#
# /dev/kvm: libvirt probes it, and a KVM node it cannot open makes every
# domain start take ~44 s on these machines even for type='qemu' guests, so
# start gives it group kvm and mode 0660 (as udev would) and stop restores
# what it was.
set -euo pipefail

usage() {
    echo "usage: $0 start DIR | stop DIR | check" >&2
    exit 2
}

answers() {
    timeout 30 virsh -q -c qemu:///system uri </dev/null >/dev/null 2>&1
}

pid_of() {
    local file=$1
    [ -s "$file" ] && cat "$file" || true
}

alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

cmd_check() {
    command -v libvirtd >/dev/null && command -v virtlogd >/dev/null && command -v virsh >/dev/null \
        && command -v qemu-system-x86_64 >/dev/null && [ "$(id -u)" = 0 ]
}

cmd_start() {
    local dir=$1 i pid
    mkdir -p "$dir"
    cmd_check || { echo "libvirtd.sh: needs root, libvirtd, virtlogd, virsh and qemu-system-x86_64" >&2; exit 1; }
    if answers; then
        echo "libvirtd.sh: a libvirtd already serves qemu:///system; refusing to start a second one" >&2
        exit 1
    fi
    if [ -e /dev/kvm ]; then
        stat -c '%g %a' /dev/kvm >"$dir/kvm.orig"
        chgrp kvm /dev/kvm && chmod 660 /dev/kvm
    fi
    # Stale run-time state of an earlier daemon that was killed would make
    # the new one refuse to start or try to reconnect to dead guests.
    rm -rf /run/libvirt
    virtlogd -d -p "$dir/virtlogd.pid" >>"$dir/virtlogd.log" 2>&1
    LIBVIRT_LOG_OUTPUTS="3:file:$dir/libvirtd.log" libvirtd -d -p "$dir/libvirtd.pid" >>"$dir/libvirtd.out" 2>&1
    # The first connection probes qemu's capabilities (~12 s here).
    for ((i = 0; i < 120; i++)); do
        pid=$(pid_of "$dir/libvirtd.pid")
        if [ -n "$pid" ] && ! alive "$pid"; then
            echo "libvirtd.sh: libvirtd exited; $dir/libvirtd.log says:" >&2
            tail -20 "$dir/libvirtd.log" >&2 || true
            cmd_stop "$dir"
            exit 1
        fi
        if [ -n "$pid" ] && answers; then
            echo "libvirtd.sh: libvirtd $pid and virtlogd $(pid_of "$dir/virtlogd.pid") serve qemu:///system"
            return 0
        fi
        sleep 0.5
    done
    echo "libvirtd.sh: qemu:///system did not answer within 60 s" >&2
    cmd_stop "$dir"
    exit 1
}

stop_pid() {
    local pid=$1 i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
    local dir=$1 g mode
    stop_pid "$(pid_of "$dir/libvirtd.pid")"
    stop_pid "$(pid_of "$dir/virtlogd.pid")"
    rm -f "$dir/libvirtd.pid" "$dir/virtlogd.pid"
    rm -rf /run/libvirt
    # libvirt's cgroups for its guests (no systemd here, so in each
    # hierarchy's root), deepest first; only empty ones go.
    find /sys/fs/cgroup/*/machine /sys/fs/cgroup/machine /sys/fs/cgroup/*/machine.slice \
        /sys/fs/cgroup/machine.slice -depth -type d -exec rmdir {} + 2>/dev/null || true
    if [ -s "$dir/kvm.orig" ] && [ -e /dev/kvm ]; then
        read -r g mode <"$dir/kvm.orig"
        chgrp "$g" /dev/kvm && chmod "$mode" /dev/kvm
        rm -f "$dir/kvm.orig"
    fi
}

case "${1:-}" in
start) [ $# -eq 2 ] || usage; cmd_start "$2" ;;
stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
check) cmd_check ;;
*) usage ;;
esac
