"""A remote worker with several masters (master = A, B): two independent
masters, each with its own private bus, its own state and its own loopback
TCP port, both declaring the same remote worker with the same password.
The worker attaches to the first that answers, moves to the other when its
master is killed, runs that one's builds, and stays there when the first
comes back; it skips a master whose certificate none of its pins match, or
that takes the connection and never answers; it exits when every master
refuses it; a reload keeps the lists it started with. All over TLS, each
master with its own certificate, pinned or signed by one CA."""

import os
import re
import signal
import socket
import time
import unittest

from harness import System, SystemTest, free_port, master_fingerprint, wait_for
from test_remote import master_config
from tlslib import CA

# A step that names the worker's basedir: the build ran on this worker.
STEP = "echo ran-in-$PWD"


class SeveralMasters(SystemTest):

    def setUp(self):
        super().setUp()
        self.a = self.sys
        self.b = System()
        self.addCleanup(self.b.close)
        self.b.start_bus()
        self.port_a = free_port()
        self.port_b = free_port()

    def start_master(self, s, port, master_lines=""):
        s.write_config(master_config(port, builders={"b": (["r1"], [STEP])}, master_lines=master_lines))
        return s.start_master()

    def start_both(self):
        self.start_master(self.a, self.port_a)
        self.start_master(self.b, self.port_b)

    def address(self, port):
        return f"127.0.0.1:{port}"

    def start_worker(self, masters, pins=None, password="pw-r1", trust=None):
        """Worker r1, run by system A, with `master = masters` (ports or
        addresses) and `master_fingerprint = pins` (default: both masters'),
        or `trust` lines instead."""
        if trust is None:
            if pins is None:
                pins = [master_fingerprint(self.a), master_fingerprint(self.b)]
            trust = f"master_fingerprint = {', '.join(pins)}\n"
        listed = ", ".join(self.address(m) if isinstance(m, int) else m for m in masters)
        with open(os.path.join(self.a.dir, "etc", "workers", "r1.ini"), "w") as f:
            f.write(f"master = {listed}\npassword = {password}\nreconnect_max = 2\n{trust}")
        return self.a.start_worker("r1", wait_attached=False)

    def attached_to(self, s, timeout=10):
        s.wait_attached("r1", timeout=timeout)

    def connected(self, s):
        return s.worker_prop("r1", "Connected")

    def run_build(self, s):
        bid = s.submit("b")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertIn("ran-in-" + os.path.join(self.a.dir, "workers", "r1"), s.read_log(bid))

    def test_fails_over_to_the_second_and_stays_there(self):
        self.start_both()
        w = self.start_worker([self.port_a, self.port_b])
        self.attached_to(self.a)
        self.assertFalse(self.connected(self.b))
        w.wait_notify(f"STATUS=attached to master at {self.address(self.port_a)} as r1")
        self.run_build(self.a)

        self.a.master.signal(signal.SIGKILL)
        self.a.master.wait()
        killed = time.monotonic()
        # The loss shows at once (the kernel closes the connection); the step
        # to the next master waits at most a second.
        self.attached_to(self.b, timeout=5)
        took = time.monotonic() - killed
        log = w.log()
        # (The TLS layer sees the end first: "the connection to the master
        # at A: connection error: unexpected eof ...".)
        self.assertRegex(log, r"the connection to the master at 127\.0\.0\.1:%d[^\n]*; trying the master at "
                              r"127\.0\.0\.1:%d in [01]\.\d s" % (self.port_a, self.port_b))
        self.assertIn(f"attached to the master at {self.address(self.port_b)} as worker 'r1'", log)
        w.wait_notify(f"STATUS=attached to master at {self.address(self.port_b)} as r1")
        self.run_build(self.b)

        # A comes back: the worker keeps B, which keeps it.
        self.a.start_master()
        time.sleep(3)  # longer than reconnect_max: a worker that went back would have by now
        self.assertTrue(self.connected(self.b))
        self.assertFalse(self.connected(self.a))
        self.assertEqual(w.log().count(f"attached to the master at {self.address(self.port_a)} "), 1)
        self.run_build(self.b)
        self.assertLess(took, 5)

    def test_one_ca_for_both_masters(self):
        # tls_ca_file instead of pins: one CA signs both masters'
        # certificates, each for the host name the worker connects to.
        ca = CA(self.a.dir)
        for s, port, stem in ((self.a, self.port_a, "ma"), (self.b, self.port_b, "mb")):
            cert, key = ca.issue(stem, "localhost")
            self.start_master(s, port, master_lines=f"tls_certificate = {cert}\ntls_key = {key}\n")
        w = self.start_worker([f"localhost:{self.port_a}", f"localhost:{self.port_b}"],
                              trust=f"tls_ca_file = {ca.path}\n")
        self.attached_to(self.a)
        self.a.master.signal(signal.SIGKILL)
        self.a.master.wait()
        self.attached_to(self.b, timeout=5)
        self.assertIn(f"attached to the master at localhost:{self.port_b} as worker 'r1'", w.log())
        self.run_build(self.b)

    def test_a_new_list_waits_for_a_restart(self):
        # SIGHUP with the masters and the pins changed: the link keeps the
        # lists it started with, and the worker says so.
        self.start_both()
        w = self.start_worker([self.port_a, self.port_b])
        self.attached_to(self.a)
        with open(os.path.join(self.a.dir, "etc", "workers", "r1.ini"), "w") as f:
            f.write(f"master = {self.address(self.port_b)}, {self.address(self.port_a)}\npassword = pw-r1\n"
                    f"reconnect_max = 2\nmaster_fingerprint = {master_fingerprint(self.b)}\n")
        w.signal(signal.SIGHUP)
        wait_for(lambda: "reloaded " in w.log(), 10, "the worker's reload")
        self.assertIn("master, master_fingerprint changed in", w.log())
        self.assertIn("takes effect only when the worker restarts", w.log())
        self.assertTrue(self.connected(self.a))

    def test_starts_with_the_first_that_answers(self):
        # Nothing listens at the first address; the second is B.
        self.start_master(self.b, self.port_b)
        nowhere = free_port()
        w = self.start_worker([nowhere, self.port_b], pins=[master_fingerprint(self.b)])
        self.attached_to(self.b)
        self.assertRegex(w.log(), r"cannot connect to the master at 127\.0\.0\.1:%d: Connection refused; trying "
                                  r"the master at 127\.0\.0\.1:%d" % (nowhere, self.port_b))
        self.run_build(self.b)

    def test_a_master_whose_certificate_is_not_pinned_is_skipped(self):
        # Both masters run; only B's certificate is pinned: A is not talked to.
        self.start_both()
        w = self.start_worker([self.port_a, self.port_b], pins=[master_fingerprint(self.b)])
        self.attached_to(self.b)
        self.assertFalse(self.connected(self.a))
        self.assertIn(f"the master at {self.address(self.port_a)} presented certificate "
                      f"{master_fingerprint(self.a)}, not the one pinned by master_fingerprint", w.log())
        self.assertNotRegex(self.a.master.log(), r"worker r1 attached")

    def test_a_master_that_never_answers_is_left_after_ten_seconds(self):
        # A listening socket that accepts nothing: the connection is made by
        # the kernel, TLS never starts, as with a master that hangs.
        self.start_master(self.b, self.port_b)
        mute = socket.socket()
        self.addCleanup(mute.close)
        mute.bind(("127.0.0.1", 0))
        mute.listen(4)
        w = self.start_worker([mute.getsockname()[1], self.port_b], pins=[master_fingerprint(self.b)])
        started = time.monotonic()
        self.attached_to(self.b, timeout=20)
        self.assertGreaterEqual(time.monotonic() - started, 9)
        self.assertIn(f"the master at 127.0.0.1:{mute.getsockname()[1]} did not answer within 10 s; trying the "
                      f"master at {self.address(self.port_b)}", w.log())

    def test_exits_when_every_master_refuses(self):
        self.start_both()
        w = self.start_worker([self.port_a, self.port_b], password="wrong")
        self.assertEqual(w.wait(20), 1)
        log = w.log()
        for port in (self.port_a, self.port_b):
            self.assertRegex(log, r"the master at 127\.0\.0\.1:%d refused worker 'r1': authentication failed" % port)
        self.assertIn("every master in master = refused this worker", log)
        self.assertEqual(len(re.findall(r"refused worker 'r1'", log)), 2, log)


if __name__ == "__main__":
    unittest.main()
