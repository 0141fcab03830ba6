# systemd as PID 1 in a container, for the unit and packaging tests.
# Source this, then define fail MESSAGE, which must not return, or call
# nspawn_test. Sets ns (nspawn's PID) and leader (the container's PID 1).
ns=
leader=
ct_timeout=30

# ct COMMAND...: runs COMMAND in the container, bounded and without stdin.
ct() { timeout "$ct_timeout" nsenter -t "$leader" -a "$@" </dev/null; }

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
    local what=$1 deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for $what"
        sleep 0.2
    done
}

step() { echo "== $*"; }

# What every test container's systemd gets on its command line (after
# nspawn's `--`): no first-boot questions, and no wait for a network that
# never comes (the containers run with --private-network or the host's
# loopback only), which other packages' units (open-iscsi, OpenStack's)
# would otherwise order our units behind for two minutes.
nspawn_init_args=(systemd.firstboot=off systemd.mask=systemd-networkd-wait-online.service
                  systemd.mask=NetworkManager-wait-online.service)

# nspawn_boot LOG NSPAWN-ARGUMENT...: runs systemd-nspawn with the arguments
# (which must boot, -b) in the background, its output in LOG, and waits until
# the container's systemd has finished starting up; prints the system state.
nspawn_boot() {
    local log=$1
    shift
    systemd-nspawn "$@" >"$log" 2>&1 </dev/null &
    ns=$!
    for _ in $(seq 100); do
        leader=$(awk '{print $1}' "/proc/$ns/task/$ns/children" 2>/dev/null || true)
        [ -n "$leader" ] && [ "$(readlink "/proc/$leader/exe" 2>/dev/null)" = /usr/lib/systemd/systemd ] && break
        leader=
        sleep 0.1
    done
    [ -n "$leader" ] || { cat "$log" >&2; fail "the container did not start systemd"; }
    # PID 1 answers on its private socket a moment after it starts.
    wait_for "systemd in the container" 30 ct systemctl show -P Version
    echo "system: $(timeout 60 nsenter -t "$leader" -a systemctl is-system-running --wait </dev/null || true)"
}

# nspawn_stop: ends the container, if any: SIGTERM, then SIGKILL after 10 s.
nspawn_stop() {
    if [ -n "$ns" ] && kill -0 "$ns" 2>/dev/null; then
        kill -TERM "$ns"
        for _ in $(seq 100); do kill -0 "$ns" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$ns" 2>/dev/null || true
        wait "$ns" 2>/dev/null || true
    fi
    ns=
    leader=
}

# nspawn_remove_cgroups: nspawn leaves empty cgroups behind on the host;
# removes them, deepest first. Busy ones (another container's) stay.
nspawn_remove_cgroups() {
    local root top
    for root in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
        for top in payload supervisor; do
            if [ -d "$root/$top" ]; then find "$root/$top" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
        done
    done
}

# nspawn_test JOURNALCTL-ARGUMENT...: what a test script in tests/systemd
# needs around its container: exit 77 (skipped) without root or
# systemd-nspawn; fail MESSAGE, which also shows the container's journal
# (journalctl -b with the arguments) once it has booted; and, when the
# script exits, the container, its cgroups and its directory $work (if set)
# removed.
nspawn_test() {
    [ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
    command -v systemd-nspawn >/dev/null || { echo "needs systemd-nspawn (systemd-container)"; exit 77; }
    nspawn_journal_args=("$@")
    fail() {
        echo "FAIL: $*" >&2
        if [ -n "$leader" ]; then
            ct journalctl -b --no-pager -o short-monotonic "${nspawn_journal_args[@]}" >&2 || true
        fi
        exit 1
    }
    trap 'nspawn_stop; nspawn_remove_cgroups; rm -rf "${work:-}"' EXIT
}
