"""File descriptors under a flood of TCP connections: the master keeps its
connection limit below RLIMIT_NOFILE with a reserve, caps the connections
one address may hold before authenticating, and a local build under the
flood keeps its whole log and is not held up."""

import os
import select
import socket
import time
import unittest

from harness import BIN, SystemTest, free_port, master_fingerprint, wait_for


class Flood:
    """Idle TCP connections to the master from given loopback addresses."""

    def __init__(self, port, per_address, addresses):
        self.socks = []
        for address in addresses:
            for _ in range(per_address):
                s = socket.socket()
                s.bind((address, 0))
                s.connect(("127.0.0.1", port))
                s.setblocking(False)
                self.socks.append(s)

    def closed_by_master(self):
        """How many of the connections the master has closed."""
        poller = select.poll()
        by_fd = {}
        for s in self.socks:
            poller.register(s, select.POLLIN)
            by_fd[s.fileno()] = s
        n = 0
        for fd, _ in poller.poll(0):
            try:
                # The master sends nothing before the worker speaks: EOF only.
                if by_fd[fd].recv(1, socket.MSG_PEEK) == b"":
                    n += 1
            except OSError:
                n += 1
        return n

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


class Descriptors(SystemTest):
    LINES = 20000

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.sys.write_config(f"""
            [master]
            listen = 127.0.0.1:{self.port}
            auth_timeout = 120
            [worker w1]
            type = local
            [worker r1]
            password = pw-r1
            [builder out]
            workers = w1
            step.1 = seq 1 {self.LINES}
            [builder remote]
            workers = r1
            step.1 = echo remote ok
        """)

    def start_master_with_nofile(self, nofile):
        argv = ["prlimit", f"--nofile={nofile}:{nofile}", "--",
                os.path.join(BIN, "buildyard-masterd"), "--config", self.sys.config_path,
                "--state-directory", self.sys.state_dir]
        self.sys.master = self.sys._spawn("master", argv, notify=True)
        self.sys.master.wait_notify("READY=1")
        return self.sys.master

    def flood(self, per_address, addresses):
        f = Flood(self.port, per_address, addresses)
        self.addCleanup(f.close)
        return f

    def run_local_build(self):
        build = self.sys.submit("out")
        _, result = self.sys.wait_build(build, timeout=30)
        self.assertEqual(result, "success")
        started = self.sys.build_prop(build, "SubmittedAt")
        finished = self.sys.build_prop(build, "FinishedAt")
        log = self.sys.read_log(build)
        return log, (finished - started) / 1e6

    def remote_worker(self, name):
        path = os.path.join(self.sys.dir, "etc", "workers", f"{name}.ini")
        with open(path, "w") as f:
            # Over TLS, pinning the running master's certificate.
            f.write(f"master = 127.0.0.1:{self.port}\npassword = pw-{name}\nreconnect_max = 1\n"
                    f"master_fingerprint = {master_fingerprint(self.sys)}\n")
        return self.sys.start_worker(name, config=path)

    def test_flood_at_the_limit_loses_no_log_and_delays_no_local_build(self):
        nofile = 1024
        master = self.start_master_with_nofile(nofile)
        self.sys.start_worker("w1")
        limit = (nofile - 256) // 4  # TCP socket, the TLS tunnel's pair, a log
        self.assertIn(f"at most {limit} remote connections", master.log())
        _, baseline = self.run_local_build()
        # 1,100 idle connections, as in the report, from five addresses (each
        # under the per-address cap): more than the master's descriptors.
        flood = self.flood(220, [f"127.0.0.{i}" for i in range(2, 7)])
        wait_for(lambda: flood.closed_by_master() == len(flood.socks) - limit, 30,
                 f"the master to keep {limit} connections and close the rest")
        self.assertLess(len(os.listdir(f"/proc/{master.pid}/fd")), nofile - 128)
        log, took = self.run_local_build()
        lines = log.split("\n")
        for n in (1, self.LINES // 2, self.LINES):
            self.assertIn(str(n), lines)
        self.assertEqual(len([x for x in lines if x.isdigit()]), self.LINES, "lines lost from the build log")
        self.assertNotIn("Too many open files", master.log())
        self.assertNotIn("cannot open the log", master.log())
        self.assertLess(took, max(5.0, 10 * baseline), f"the build took {took:.2f} s under the flood")
        # Refusals are logged, but not one line per connection.
        refusals = master.log().count("refused a connection from")
        self.assertGreaterEqual(refusals, 1)
        self.assertLess(refusals, 10)
        # Once the flood ends, remote workers get in again.
        flood.close()
        self.remote_worker("r1")
        self.assertEqual(self.sys.wait_build(self.sys.submit("remote"))[1], "success")

    def test_one_address_cannot_take_every_connection_before_authenticating(self):
        master = self.start_master_with_nofile(4096)
        cap = 256
        flood = self.flood(cap + 40, ["127.0.0.2"])
        wait_for(lambda: flood.closed_by_master() == 40, 30, "the master to close the connections past the cap")
        time.sleep(0.2)
        self.assertEqual(flood.closed_by_master(), 40)
        self.assertIn(f"{cap} connections from 127.0.0.2 have not authenticated yet", master.log())
        # Another address (the worker's 127.0.0.1) still gets in and attaches.
        self.remote_worker("r1")
        self.assertEqual(self.sys.wait_build(self.sys.submit("remote"))[1], "success")


if __name__ == "__main__":
    unittest.main()
