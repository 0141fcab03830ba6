#!/usr/bin/python3
"""The OpenStack fixture's last resort: reaper.py DIR

Started by the fixture with the read end of a pipe as its standard input,
whose write end only the fixture's process holds. It waits for end of
file: the fixture closed the pipe (stop() is done) or its process died in
any way, SIGKILL from a CTest timeout included. Then it sends SIGTERM to
every process group listed in DIR/run/pgids (one ID per line), SIGKILL
after 15 s to what is left, and removes DIR (unless
BUILDYARD_KEEP_OPENSTACK=1). The services run in their own sessions, so
nothing else would end them.
"""

import os
import shutil
import signal
import sys
import time


def groups(path):
    try:
        with open(path) as f:
            return [int(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    scratch = sys.argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C to the test's terminal is the fixture's
    sys.stdin.buffer.read()
    pgids = [g for g in groups(os.path.join(scratch, "run", "pgids")) if alive(g)]
    for g in pgids:
        os.killpg(g, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while any(alive(g) for g in pgids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for g in pgids:
        if alive(g):
            os.killpg(g, signal.SIGKILL)
    if pgids:
        print(f"reaper.py: stopped {len(pgids)} process groups the fixture left", file=sys.stderr)
    if os.environ.get("BUILDYARD_KEEP_OPENSTACK") != "1":
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
