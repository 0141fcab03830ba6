#!/usr/bin/python3
"""A TCP port on loopback that nothing uses now, below the ephemeral range.

A port the kernel picks (bind to port 0) comes from the ephemeral range, and
the kernel may hand it out again at once as the source port of some other
test's outgoing connection; a daemon that is to listen on it later (or again,
after a restart) would then find it taken. A port below that range is only
ever taken by a listener that asks for it by number.

Run as a program, it prints COUNT (default 1) distinct such ports, one per
line: free_port.py [127.0.0.1|::1] [COUNT]."""

import random
import socket
import sys


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    top = max(ephemeral_low(), 10001)
    for _ in range(1000):
        port = random.randrange(10000, top)
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port on {host} between 10000 and {top}")


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    ports = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    print("\n".join(map(str, ports)))
