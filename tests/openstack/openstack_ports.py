"""The OpenStack fixture's ports: a block of consecutive ports below the
ephemeral range (openstack_names: PORT_FIRST to PORT_LAST, PORT_BLOCK at a
time), held for the fixture's life by an abstract socket named after the
block, so two fixtures never collide, and each port claimed as
tests/lib/free_port.py claims the ports it hands out, so no test running
beside the fixture is given one."""

import os
import random
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import free_port  # noqa: E402  (tests/lib: claims on ports, shared with every test)
from openstack_names import PORT_BLOCK, PORT_FIRST, PORT_LAST, PORT_NAMES  # noqa: E402


def _free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def reserve_ports():
    """A block of free ports, held for the fixture's life by a bound
    abstract Unix socket named after the block (no file to leave behind;
    the kernel releases it when this process ends, however it ends), each
    port also claimed from free_port() in other test processes.
    Returns (socket, {name: port}); release_ports() ends the claims."""
    blocks = list(range(PORT_FIRST, PORT_LAST - PORT_BLOCK, PORT_BLOCK))
    random.shuffle(blocks)
    for base in blocks[:200]:
        lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lock.bind(f"\0buildyard-openstack-ports-{base}")
        except OSError:
            lock.close()
            continue
        ports = {name: base + i for i, name in enumerate(PORT_NAMES)}
        claimed = []
        for p in ports.values():
            if not free_port.reserve(p):
                break
            claimed.append(p)
        if len(claimed) == len(ports) and all(_free(p) for p in ports.values()):
            return lock, ports
        release_ports(claimed)
        lock.close()
    raise RuntimeError("no free block of ports for the OpenStack fixture")


def release_ports(ports):
    for p in ports:
        free_port.release(p)
