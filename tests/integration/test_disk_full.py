"""A full disk loses nothing and confuses nothing: with the state directory
on a 2 MiB tmpfs that the test fills, a build end and a requeue that cannot
be stored leave the build running on the bus as in the database, no build
id is handed out that the database did not commit, the condition is logged
once and shown in STATUS=, and everything is stored once space returns."""

import errno
import os
import signal
import subprocess
import time
import unittest

from harness import (MASTER_PATH, SystemTest, bus_error, gate_step, open_gate, wait_for,
                     wait_gate_reached)

MASTER1 = "org.buildyard.Master1"
FULL = "database or disk is full"


class DiskFull(SystemTest):
    def setUp(self):
        super().setUp()
        s = self.sys
        os.makedirs(s.state_dir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "buildyard-test", s.state_dir],
                       check=True)
        self.addCleanup(self.unmount)
        s.write_config(f"""
            [master]
            listen =
            [worker w1]
            type = local
            lost_build_grace = 0
            [builder gated]
            workers = w1
            step.1 = {gate_step(s)}
            [builder quick]
            workers = w1
            step.1 = echo quick
            [worker w2]
            type = local
            max_builds = 1
            [builder gated2]
            workers = w2
            step.1 = {gate_step(s)}
            [builder quick2]
            workers = w2
            step.1 = echo quick
        """)
        s.start_master()
        self.w1 = s.start_worker("w1")

    def unmount(self):
        # The master first: it holds the database open.
        if self.sys.master:
            self.sys.master.stop()
        subprocess.run(["umount", self.sys.state_dir], check=False)
        if os.path.ismount(self.sys.state_dir):
            subprocess.run(["umount", "-l", self.sys.state_dir], check=False)

    def fill(self):
        """Fills the state directory's file system to the last byte."""
        fd = os.open(os.path.join(self.sys.state_dir, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (1 << 16, 4096, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as e:
                        self.assertEqual(e.errno, errno.ENOSPC)
                        break
        finally:
            os.close(fd)

    def free(self):
        os.unlink(os.path.join(self.sys.state_dir, "filler"))

    def master_prop(self, prop):
        return self.sys.get(MASTER_PATH, MASTER1, prop)

    def newest_id(self):
        return max(int(r[0]) for r in self.sys.call(MASTER_PATH, MASTER1, "ListBuilds", "t", 0)[0])

    def status_with(self, text):
        return wait_for(lambda: [m for m in self.sys.master.messages if "STATUS=" in m and text in m], 10,
                        f"STATUS= with '{text}'")

    def last_status(self):
        return [m for m in self.sys.master.messages if "STATUS=" in m][-1]

    def assert_logged_once(self):
        log = self.sys.master.log()
        self.assertEqual(log.count("retries every second until the state database takes writes again"), 1, log)

    def restart_master(self):
        self.sys.master.stop()
        self.sys.start_master()

    def test_a_build_end_that_cannot_be_stored_waits_for_space(self):
        s = self.sys
        build = s.submit("gated")
        wait_gate_reached(s, build)
        self.fill()
        open_gate(s, build)
        wait_for(lambda: f"cannot record the end of build {build}: cannot update a build: {FULL}" in s.master.log(),
                 10, "the failed write")
        self.status_with(f"cannot write the state database ({FULL})")
        wait_for(lambda: "the master did not take the result of build" in self.w1.log(), 10, "the worker to be told")
        # The bus says what the database says: still running, no result.
        self.assertEqual(s.build_prop(build, "State"), "running")
        self.assertEqual(s.build_prop(build, "Result"), "")
        self.assertEqual(self.master_prop("RunningBuilds"), 1)
        # A submission is refused, and hands out no id.
        self.assertEqual(bus_error(s, MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:quick",
                                   "dict:string:string:"), "org.buildyard.Error.Internal")
        self.assertEqual(self.newest_id(), build)
        self.assert_logged_once()

        self.free()
        self.assertEqual(s.wait_build(build, timeout=10)[1], "success")
        wait_for(lambda: "notice: the state database takes writes again" in s.master.log(), 10, "the recovery")
        wait_for(lambda: "cannot write" not in self.last_status(), 10, "STATUS= without the failure")
        self.assertEqual(self.master_prop("RunningBuilds"), 0)
        self.assert_logged_once()
        # It is in the database: a restart does not run it again.
        self.restart_master()
        self.assertEqual(s.build_prop(build, "State"), "finished")
        self.assertEqual(s.build_prop(build, "Result"), "success")
        self.assertEqual(s.build_prop(build, "RetriedAs"), 0)
        s.wait_attached("w1")
        self.assertEqual(s.submit("quick"), build + 1)

    def test_a_refused_submission_alone_leaves_status_once_space_returns(self):
        """A refused submission leaves nothing to write again: the master
        finds out by itself (a write of nothing, every second) when the
        database takes writes again, and STATUS= stops saying otherwise."""
        s = self.sys
        s.wait_attached("w1")
        self.fill()
        self.assertEqual(bus_error(s, MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:quick",
                                   "dict:string:string:"), "org.buildyard.Error.Internal")
        self.status_with(f"cannot write the state database ({FULL})")
        # Still full: the tries of the next seconds find it so, and say nothing new.
        time.sleep(2.5)
        self.assertIn(f"cannot write the state database ({FULL})", self.last_status())
        self.assertNotIn("notice: the state database takes writes again", s.master.log())
        self.assert_logged_once()
        self.free()
        wait_for(lambda: "notice: the state database takes writes again" in s.master.log(), 10, "the recovery")
        wait_for(lambda: "cannot write" not in self.last_status(), 10, "STATUS= without the failure")
        self.assert_logged_once()
        self.assertEqual(s.wait_build(s.submit("quick"), timeout=10)[1], "success")

    def test_a_requeue_that_cannot_be_stored_waits_for_space(self):
        s = self.sys
        build = s.submit("gated")
        wait_gate_reached(s, build)
        self.fill()
        self.w1.signal(signal.SIGKILL)
        # The first failed write (the worker's disconnection time, then the
        # requeue) is the one logged.
        wait_for(lambda: f"{FULL}; the master keeps what it was told" in s.master.log(), 10, "the failed requeue")
        wait_for(lambda: s.get(s.worker_path("w1"), "org.buildyard.Worker1", "Connected") is False, 10,
                 "w1 to be detached")
        self.status_with(FULL)
        self.assertEqual(s.build_prop(build, "State"), "running")
        self.assertEqual(s.build_prop(build, "RetriedAs"), 0)
        self.assertEqual(self.master_prop("RunningBuilds"), 1)
        self.assertEqual(self.newest_id(), build)
        self.assert_logged_once()

        self.free()
        wait_for(lambda: s.build_prop(build, "State") == "finished", 10, "the requeue to be stored")
        self.assertEqual(s.build_prop(build, "Result"), "retry")
        rerun = s.build_prop(build, "RetriedAs")
        self.assertEqual(rerun, build + 1)
        self.assertEqual(s.build_prop(rerun, "State"), "pending")
        self.assertEqual(self.master_prop("RunningBuilds"), 0)
        # The rerun runs once the worker is back, and its id stays its own.
        s.start_worker("w1")
        wait_gate_reached(s, rerun)
        self.assertEqual(s.submit("quick"), rerun + 1)
        open_gate(s, rerun)
        self.assertEqual(s.wait_build(rerun)[1], "success")
        self.assertEqual(s.wait_build(rerun + 1)[1], "success")
        self.assertEqual(self.master_prop("RunningBuilds"), 0)
        self.assert_logged_once()

    def test_a_submission_that_cannot_be_stored_keeps_no_worker_busy(self):
        s = self.sys
        s.start_worker("w2")
        self.fill()
        # A worker was free for it: planned there, but the commit that
        # would record it started fails. No id, and the worker (one build
        # at a time) stays free.
        self.assertEqual(bus_error(s, MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:quick2",
                                   "dict:string:string:"), "org.buildyard.Error.Internal")
        self.assertEqual(s.get(s.worker_path("w2"), "org.buildyard.Worker1", "RunningBuilds"), 0)
        self.assertEqual(s.call(MASTER_PATH, MASTER1, "ListBuilds", "t", 0)[0], [])
        self.free()
        for _ in range(2):
            self.assertEqual(s.wait_build(s.submit("quick2"), timeout=10)[1], "success")

    def test_an_end_and_the_next_start_that_cannot_be_stored_wait_for_space(self):
        s = self.sys
        s.start_worker("w2")
        first = s.submit("gated2")
        wait_gate_reached(s, first)
        second = s.submit("quick2")  # w2 runs one build at a time
        self.fill()
        # The end and the start of the next build on the freed worker would
        # share one commit: refused, the end waits for space alone and the
        # next build stays queued.
        open_gate(s, first)
        wait_for(lambda: f"cannot record the end of build {first}: cannot update a build: {FULL}" in s.master.log(),
                 10, "the failed write")
        self.status_with(FULL)
        self.assertEqual(s.build_prop(first, "State"), "running")
        self.assertEqual(s.build_prop(second, "State"), "pending")
        self.assertEqual(self.master_prop("RunningBuilds"), 1)
        self.assertEqual(self.master_prop("PendingBuilds"), 1)

        self.free()
        self.assertEqual(s.wait_build(first, timeout=10)[1], "success")
        self.assertEqual(s.wait_build(second, timeout=10)[1], "success")
        self.assertEqual(self.master_prop("PendingBuilds"), 0)
        self.assert_logged_once()

    def test_starts_that_cannot_be_stored_leave_the_builds_pending(self):
        s = self.sys
        self.w1.signal(signal.SIGKILL)
        s.wait_attached("w1", False)
        builds = [s.submit("quick") for _ in range(3)]
        self.fill()
        # The worker attaches to a master whose store takes no writes: the
        # one dispatch round that would start all three claims them in one
        # commit, which fails, so none starts, on the bus as in the store.
        self.w1 = s.start_worker("w1")
        self.status_with(FULL)
        self.assertEqual([s.build_prop(b, "State") for b in builds], ["pending"] * 3)
        self.assertEqual(self.master_prop("PendingBuilds"), 3)
        self.assertEqual(self.master_prop("RunningBuilds"), 0)
        self.assertEqual(s.get(s.worker_path("w1"), "org.buildyard.Worker1", "RunningBuilds"), 0)
        self.assert_logged_once()

        self.free()
        for b in builds:
            self.assertEqual(s.wait_build(b, timeout=10), (b, "success"))
        self.assertEqual([s.build_prop(b, "RetriedAs") for b in builds], [0] * 3)
        self.assertEqual(self.master_prop("PendingBuilds"), 0)
        # In the database too: a restart runs none of them again.
        self.restart_master()
        self.assertEqual([s.build_prop(b, "State") for b in builds], ["finished"] * 3)
        self.assertEqual(self.newest_id(), builds[-1])


if __name__ == "__main__":
    unittest.main()
