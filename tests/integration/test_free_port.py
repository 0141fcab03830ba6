"""The tests' ports (tests/lib/free_port.py, tests/openstack/openstack_ports.py):
a port handed to one test process is not handed to another while the first
lives, whether by free_port() or as part of the OpenStack fixture's block,
and is free for others again once the first releases it or ends. Each case
runs the other process for real, with the candidate range narrowed to a
few ports above the kernel's ephemeral range (65525-65535), which no other
test picks from, so that the outcome is exact."""

import os
import subprocess
import sys
import unittest

from harness import SOURCE, wait_for

LIB = os.path.join(SOURCE, "tests", "lib")
OPENSTACK = os.path.join(SOURCE, "tests", "openstack")
sys.path.insert(0, LIB)

import free_port  # noqa: E402

sys.path.insert(0, OPENSTACK)
from openstack_names import PORT_NAMES  # noqa: E402

# A range of 11 ports: with an ephemeral range said to start too low to
# leave room below it, free_port() picks above its end: 65525 to 65535.
# The subject is the claims, not TCP: every port is taken as bindable, so
# that a host whose real ephemeral range reaches that high changes nothing.
NARROW = ("free_port.ephemeral_range = lambda: (1024, 65524)\n"
          "free_port.bindable = lambda host, port: True\n")
FIRST, LAST = 65525, 65535


PROLOGUE = f"import sys\nsys.path[:0] = [{LIB!r}, {OPENSTACK!r}]\nimport free_port, openstack_ports\n"


def other_process(code):
    """Runs `code` in another Python process that imported free_port and
    openstack_ports; returns its stdout, stripped (its stderr's last line
    on failure)."""
    out = subprocess.run([sys.executable, "-c", PROLOGUE + code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() if out.returncode == 0 else "failed: " + out.stderr.strip().splitlines()[-1]


class Claims(unittest.TestCase):

    def setUp(self):
        self.held = []
        self.addCleanup(lambda: [free_port.release(p) for p in self.held])

    def hold(self, ports):
        for p in ports:
            self.assertTrue(free_port.reserve(p), f"port {p} is claimed by some other process")
            self.held.append(p)

    def test_a_claimed_port_is_not_handed_out_elsewhere_until_released(self):
        self.hold([p for p in range(FIRST, LAST + 1) if p != 65530])
        self.assertEqual(other_process(NARROW + "print(free_port.free_port())"), "65530")
        self.hold([65530])
        self.assertIn(f"no free port on 127.0.0.1 between {FIRST} and {LAST}",
                      other_process(NARROW + "print(free_port.free_port())"))
        free_port.release(65527)
        self.held.remove(65527)
        self.assertEqual(other_process(NARROW + "print(free_port.free_port())"), "65527")

    def test_a_process_that_ends_leaves_its_ports_free(self):
        # The other process takes all 11 and ends without releasing them.
        taken = other_process(NARROW + "print(sorted(free_port.free_port() for _ in range(11)))")
        self.assertEqual(taken, str(list(range(FIRST, LAST + 1))))
        self.hold(range(FIRST, LAST + 1))

    def test_one_process_is_never_handed_the_same_port_twice(self):
        ports = other_process(NARROW + "print(len({free_port.free_port() for _ in range(11)}))")
        self.assertEqual(ports, "11")

    def test_the_openstack_block_skips_claimed_ports_and_claims_its_own(self):
        # Blocks at 65500, 65510 and 65520; this process holds a port in the
        # first and the last, so the fixture's block is the middle one, and
        # while the fixture holds it, its ports are claimed here too.
        self.hold([65503, 65524])
        code = ("openstack_ports.PORT_FIRST, openstack_ports.PORT_LAST = 65500, 65531\n"
                "openstack_ports._free = lambda port: True\n"
                "lock, ports = openstack_ports.reserve_ports()\n"
                "print(sorted(ports.values()), flush=True)\n"
                "sys.stdin.readline()\n"
                "openstack_ports.release_ports(ports.values())\n"
                "print('released', flush=True)\n"
                "sys.stdin.readline()\n")
        fixture = subprocess.Popen([sys.executable, "-c", PROLOGUE + code], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        self.addCleanup(fixture.stdout.close)
        self.addCleanup(fixture.kill)
        block = list(range(65510, 65510 + len(PORT_NAMES)))
        self.assertEqual(fixture.stdout.readline().strip(), str(block))
        taken = [p for p in block if free_port.reserve(p)]
        self.held.extend(taken)
        self.assertEqual(taken, [], "ports of the fixture's block claimed here while it holds them")
        fixture.stdin.write("release\n")
        fixture.stdin.flush()
        self.assertEqual(fixture.stdout.readline().strip(), "released")
        self.hold(block)  # while it still runs
        fixture.stdin.close()
        self.assertEqual(fixture.wait(timeout=10), 0)

    def test_a_script_holds_its_ports_until_it_ends(self):
        # free_port.py --hold-for $$, as the benchmarks run it: its ports
        # stay claimed after it has printed them and returned, and end
        # with the script.
        script = subprocess.Popen(
            ["/bin/bash", "-c", f'ports=$(/usr/bin/python3 {LIB}/free_port.py --hold-for $$ 127.0.0.1 2); '
                                'echo $ports; cat >/dev/null'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(script.stdout.close)
        self.addCleanup(script.kill)
        ports = [int(p) for p in script.stdout.readline().split()]
        self.assertEqual(len(set(ports)), 2, ports)
        taken = [p for p in ports if free_port.reserve(p)]
        self.held.extend(taken)
        self.assertEqual(taken, [], "ports claimed here while the script holds them")
        script.stdin.close()
        self.assertEqual(script.wait(timeout=10), 0)

        def claimed_here():
            for p in ports:
                if p not in self.held and free_port.reserve(p):
                    self.held.append(p)
            return all(p in self.held for p in ports)
        wait_for(claimed_here, 10, "the script's claims to end")


if __name__ == "__main__":
    unittest.main()
