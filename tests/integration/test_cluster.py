"""Cluster membership: two masters on one PostgreSQL server (started by the
test, tests/lib/postgresql.py), each on its own private bus and TCP port.
They list each other live; a master refuses to start beside a live one of
the same name; a master killed with SIGKILL is dead to the other once
cluster_timeout has passed, and not before; a master frozen with SIGSTOP
past cluster_timeout is declared dead, finds itself fenced when continued,
and joins again with a new fence, or stops if a live master took its name
meanwhile; a clean stop leaves. With SQLite the list holds the master
alone."""

import signal
import time
import unittest

from harness import MASTER_PATH, System, SystemTest, free_port, master_ini, wait_for
from pg_system_test import PgSystemTest

MASTER1 = "org.buildyard.Master1"
HEARTBEAT = 1
TIMEOUT = 3


def members(s):
    """ListClusterMembers of the master on `s`'s bus, by name."""
    rows = s.call(MASTER_PATH, MASTER1, "ListClusterMembers")[0]
    return {r[0]: {"state": r[1], "fence": r[2], "age": r[3] / 1e6, "started_at": r[4], "self": r[5],
                   "host": r[6], "address": r[7], "pid": r[8]} for r in rows}


class TwoMasters(PgSystemTest):
    def setUp(self):
        super().setUp()
        self.a = self.sys
        self.b = System()
        self.addCleanup(self.b.close)
        self.b.start_bus()

    def configure(self, s, name):
        port = free_port()
        s.write_config(master_ini(["w1"], name=name, listen=f"127.0.0.1:{port}",
                                  master_lines=f"cluster_heartbeat = {HEARTBEAT}\ncluster_timeout = {TIMEOUT}\n"))
        # Last of the drop-ins: wins over harness.py's own database, if any.
        s.write_config(f"[master]\ndatabase = {self.pg.uri}\n", "zzz-cluster.ini")
        return port

    def start_both(self):
        self.configure(self.a, "m-a")
        self.configure(self.b, "m-b")
        self.a.start_master()
        self.b.start_master()
        wait_for(lambda: set(members(self.a)) == {"m-a", "m-b"}, 10, "both masters in the table")

    def test_two_masters_list_each_other_live(self):
        self.start_both()
        for s, me, other in ((self.a, "m-a", "m-b"), (self.b, "m-b", "m-a")):
            seen = members(s)
            self.assertEqual(seen[me]["state"], "live")
            self.assertEqual(seen[other]["state"], "live")
            self.assertTrue(seen[me]["self"])
            self.assertFalse(seen[other]["self"])
            self.assertEqual(seen[me]["pid"], s.master.pid)
            self.assertEqual(seen[me]["fence"], 1)
            self.assertLessEqual(seen[other]["age"], TIMEOUT)
        self.assertEqual(members(self.a)["m-b"]["pid"], self.b.master.pid)
        # Heartbeats go on: a few timeouts later both are still live.
        time.sleep(2 * TIMEOUT)
        seen = members(self.b)
        self.assertEqual([seen[n]["state"] for n in ("m-a", "m-b")], ["live", "live"])
        self.assertLess(seen["m-a"]["age"], 2 * HEARTBEAT + 0.5)
        out = self.a.ctl("status").stdout
        self.assertIn("cluster members: 2\n", out)
        self.assertRegex(out, r"\nm-a +live +\d+\.\d s ago +1 +\S+ +%d +127\.0\.0\.1:\d+ +this master\n"
                         % self.a.master.pid)
        self.assertRegex(out, r"\nm-b +live +\d+\.\d s ago +1 +\S+ +%d +127\.0\.0\.1:\d+ +-\n" % self.b.master.pid)
        self.assertNotIn("declared", self.a.master.log() + self.b.master.log())

    def test_a_second_master_with_a_live_name_refuses_to_start(self):
        self.configure(self.a, "m-a")
        self.a.start_master()
        self.configure(self.b, "m-a")
        p = self.b.start_master(wait_ready=False)
        self.assertEqual(p.wait(30), 1)
        log = p.log()
        self.assertRegex(log, r"a live master named 'm-a' is in the cluster \(host \S+, pid %d, last heartbeat "
                              r"\d+\.\d s ago\); two masters must not share a name" % self.a.master.pid)
        seen = members(self.a)
        self.assertEqual(list(seen), ["m-a"])
        self.assertEqual((seen["m-a"]["state"], seen["m-a"]["fence"], seen["m-a"]["pid"]),
                         ("live", 1, self.a.master.pid), "the refused master changed nothing")
        # A reload cannot rename a member either.
        with open(self.a.config_path) as f:
            self.a.write_config(f.read().replace("name = m-a", "name = m-c"))
        out = self.a.run(["busctl", "--system", "call", MASTER1, MASTER_PATH, MASTER1, "Reload"], check=False)
        self.assertIn("[master] name: cannot change on reload in a cluster (from m-a to m-c)", out.stderr)

    def test_a_killed_master_is_dead_once_the_timeout_passed_and_not_before(self):
        self.start_both()
        fence = members(self.a)["m-b"]["fence"]
        self.b.master.signal(signal.SIGKILL)
        self.b.master.wait()
        killed = time.monotonic()
        samples = []
        while time.monotonic() - killed < TIMEOUT + 3:
            seen = members(self.a)["m-b"]
            samples.append((time.monotonic() - killed, seen["state"], seen["age"]))
            if seen["state"] == "dead":
                break
            time.sleep(0.1)
        self.assertEqual(samples[-1][1], "dead", samples)
        for at, state, age in samples:
            # The database's clock decides: live while the heartbeat is at
            # most the timeout old, dead once it is older.
            self.assertEqual(state, "live" if age <= TIMEOUT else "dead", samples)
        # The last heartbeat was about one heartbeat before the kill (two: a busy machine).
        self.assertGreaterEqual(samples[-1][0], TIMEOUT - 2 * HEARTBEAT, samples)
        self.assertEqual(samples[0][1], "live", samples)
        # m-a declares it dead and fences it, once.
        wait_for(lambda: "declared master 'm-b' dead" in self.a.master.log(), HEARTBEAT + 3, "the declaration")
        self.assertEqual(self.a.master.log().count("declared master 'm-b' dead"), 1)
        self.assertEqual(members(self.a)["m-b"]["fence"], fence + 1)
        self.assertEqual(self.pg.psql("SELECT status || ' ' || declared_dead_by FROM masters WHERE name = 'm-b'"),
                         "dead m-a")
        # Restarted on the same host, it takes its name back at once.
        self.b.start_master()
        self.assertEqual(members(self.a)["m-b"]["state"], "live")
        self.assertEqual(members(self.a)["m-b"]["fence"], fence + 2)

    def test_a_frozen_master_is_fenced_and_joins_again(self):
        self.start_both()
        fence = members(self.a)["m-b"]["fence"]
        self.b.master.signal(signal.SIGSTOP)
        try:
            wait_for(lambda: members(self.a)["m-b"]["state"] == "dead", TIMEOUT + 3, "m-b to be dead")
            wait_for(lambda: "declared master 'm-b' dead" in self.a.master.log(), HEARTBEAT + 3, "the declaration")
            self.assertEqual(members(self.a)["m-b"]["fence"], fence + 1)
        finally:
            self.b.master.signal(signal.SIGCONT)
        wait_for(lambda: "joined the cluster again" in self.b.master.log(), 10, "m-b to join again")
        log = self.b.master.log()
        self.assertIn(f"this master was fenced: fence {fence} no longer holds the name 'm-b' "
                      "(declared dead by master 'm-a'); its builds were rerun by the cluster, its workers are let "
                      "go, and it joins again", log)
        self.assertIn(f"joined the cluster again as 'm-b' with fence {fence + 2}", log)
        self.assertTrue(self.b.master.alive())
        seen = members(self.a)["m-b"]
        self.assertEqual((seen["state"], seen["fence"], seen["pid"]), ("live", fence + 2, self.b.master.pid))
        time.sleep(TIMEOUT + HEARTBEAT)
        self.assertEqual(members(self.a)["m-b"]["state"], "live", "it heartbeats again")
        self.assertEqual(self.a.master.log().count("declared master 'm-b' dead"), 1)

    def test_a_fenced_master_whose_name_was_taken_stops(self):
        self.start_both()
        self.b.master.signal(signal.SIGSTOP)
        c = System()
        self.addCleanup(c.close)
        c.start_bus()
        try:
            wait_for(lambda: members(self.a)["m-b"]["state"] == "dead", TIMEOUT + 3, "m-b to be dead")
            # A new m-b (another process, on a bus of its own) takes the name.
            self.configure(c, "m-b")
            c.start_master()
            self.assertEqual(members(self.a)["m-b"]["pid"], c.master.pid)
        finally:
            self.b.master.signal(signal.SIGCONT)
        self.assertEqual(self.b.master.wait(10), 1)
        log = self.b.master.log()
        self.assertIn(f"no longer holds the name 'm-b' (another master (host ", log)
        self.assertIn(f"pid {c.master.pid}) took the name); its builds were rerun by the cluster", log)
        self.assertIn("cannot join the cluster again: a live master named 'm-b' is in the cluster", log)
        self.assertIn("; stopping", log)
        seen = members(self.a)["m-b"]
        self.assertEqual((seen["state"], seen["pid"]), ("live", c.master.pid), "the new m-b keeps its name")

    def test_a_clean_stop_leaves(self):
        self.start_both()
        self.b.master.stop()
        self.assertEqual(self.b.master.popen.returncode, 0)
        self.assertEqual(members(self.a)["m-b"]["state"], "left")
        time.sleep(TIMEOUT + HEARTBEAT)
        self.assertEqual(members(self.a)["m-b"]["state"], "left", "left, not declared dead")
        self.assertNotIn("declared", self.a.master.log())


class Alone(SystemTest):
    def test_with_sqlite_the_master_is_the_only_member(self):
        s = self.sys
        s.write_config(master_ini(["w1"], name="solo"))
        # harness.py's database drop-in (BUILDYARD_TEST_DATABASE) does not apply here.
        s.write_config("[master]\ndatabase = sqlite\n", "zzz-sqlite.ini")
        s.start_master()
        seen = members(s)
        self.assertEqual(list(seen), ["solo"])
        self.assertEqual((seen["solo"]["state"], seen["solo"]["fence"], seen["solo"]["self"], seen["solo"]["pid"]),
                         ("live", 0, True, s.master.pid))
        self.assertEqual(seen["solo"]["age"], 0)
        self.assertIn("cluster members: 1\nMASTER", s.ctl("status").stdout)


if __name__ == "__main__":
    unittest.main()
