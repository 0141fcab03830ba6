#!/usr/bin/python3
"""A TCP port on loopback that nothing uses now, below the ephemeral range.

A port the kernel picks (bind to port 0) comes from the ephemeral range, and
the kernel may hand it out again at once as the source port of some other
test's outgoing connection; a daemon that is to listen on it later (or again,
after a restart) would then find it taken. A port below that range is only
ever taken by a listener that asks for it by number (when the range starts
too low to leave room below it, a port above it).

Run as a program, it prints COUNT (default 1) distinct such ports, one per
line: free_port.py [127.0.0.1|::1] [COUNT]."""

import random
import socket
import sys


def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split()[:2])
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low, high = ephemeral_range()
    # Below the range, or above it when it starts too low to leave room.
    first, last = (10000, low - 1) if low > 10001 else (high + 1, 65535)
    for _ in range(1000):
        port = random.randint(first, last)
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port on {host} between {first} and {last}")


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    ports = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    print("\n".join(map(str, ports)))
