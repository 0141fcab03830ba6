#!/usr/bin/python3
"""A TCP port on loopback that nothing uses now, below the ephemeral range,
and that no other test process has been handed.

A port the kernel picks (bind to port 0) comes from the ephemeral range, and
the kernel may hand it out again at once as the source port of some other
test's outgoing connection; a daemon that is to listen on it later (or again,
after a restart) would then find it taken. A port below that range is only
ever taken by a listener that asks for it by number (when the range starts
too low to leave room below it, a port above it).

Between the pick and the daemon's bind, and while a daemon restarts on the
same port, the port is free, and a test running in parallel could pick it
too. So every port handed out is also claimed: this process binds the
abstract Unix socket `buildyard-test-port-PORT` and holds it until it ends
(however it ends: the kernel releases it, and there is no file to leave
behind). Another process's free_port() skips a claimed port, and so does
the OpenStack fixture's block of ports (reserve()).

Run as a program, it prints COUNT (default 1) distinct such ports, one per
line: free_port.py [--hold-for PID] [127.0.0.1|::1] [COUNT]. With
--hold-for, a process of its own keeps the claims until process PID ends
(a script passes its own, $$); without it they end when it exits, and the
script is protected only from ports that others hold."""

import os
import random
import select
import socket
import sys

_claimed = {}  # port -> the bound abstract socket that claims it for this process


def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split()[:2])
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def reserve(port):
    """Claims `port` for this process; False if another process holds it.
    A port this process already holds is not claimed twice: False too."""
    if port in _claimed:
        return False
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(f"\0buildyard-test-port-{port}")
    except OSError:
        claim.close()
        return False
    _claimed[port] = claim
    return True


def release(port):
    """Ends this process's claim on `port` (nothing if it holds none)."""
    claim = _claimed.pop(port, None)
    if claim is not None:
        claim.close()


def bindable(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host="127.0.0.1"):
    low, high = ephemeral_range()
    # Below the range, or above it when it starts too low to leave room.
    first, last = (10000, low - 1) if low > 10001 else (high + 1, 65535)
    for _ in range(1000):
        port = random.randint(first, last)
        if not reserve(port):
            continue
        if bindable(host, port):
            return port
        release(port)
    raise AssertionError(f"no free port on {host} between {first} and {last}")


def hold_until_gone(pid):
    """Keeps this process's claims, in a child of its own with no standard
    streams (a shell's $(...) reads to their end), until process `pid`
    ends; returns in the parent."""
    if os.fork() != 0:
        return
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        watched = os.pidfd_open(pid)
    except OSError:
        os._exit(0)  # already gone
    select.select([watched], [], [])
    os._exit(0)


if __name__ == "__main__":
    args = sys.argv[1:]
    holder = None
    if args[:1] == ["--hold-for"]:
        holder = int(args[1])
        args = args[2:]
    host = args[0] if args else "127.0.0.1"
    count = int(args[1]) if len(args) > 1 else 1
    print("\n".join(str(free_port(host)) for _ in range(count)), flush=True)
    if holder is not None:
        hold_until_gone(holder)
