"""Builds end to end: steps, environment, properties, results, logs, cancel,
dispatch across workers, and no build lost or run twice."""

import os
import signal
import threading
import time
import unittest

from harness import (MASTER_PATH, SignalMonitor, SystemTest, all_properties, bus_error, master_ini, process_gone,
                     read_log_slice, wait_for)

BUILD1 = "org.buildyard.Build1"
MASTER1 = "org.buildyard.Master1"


class BuildTest(SystemTest):
    def master_prop(self, prop):
        return self.sys.get(MASTER_PATH, MASTER1, prop)

    def cancel(self, build_id):
        self.sys.call(self.sys.build_path(build_id), BUILD1, "Cancel")

    def list_builds(self):
        """{id: (builder, worker, state, result)} from ListBuilds(0)."""
        rows = self.sys.call(MASTER_PATH, MASTER1, "ListBuilds", "t", 0)[0]
        return {int(r[0]): tuple(r[1:5]) for r in rows}


class StepsAndResults(BuildTest):
    def test_default_properties_give_way_to_a_builds_own(self):
        self.sys.write_config("""
            [master]
            [worker w1]
            type = local
            default_property.branch = main
            default_property.jobs = 4
            property.os = debian
            [builder p]
            workers = w1
            step.1 = echo $BUILDYARD_PROP_branch $BUILDYARD_PROP_jobs $BUILDYARD_PROP_os
            """)
        self.sys.start_master()
        self.sys.start_worker("w1")
        self.assertEqual(self.sys.worker_prop("w1", "DefaultProperties"), {"branch": "main", "jobs": "4"})
        plain = self.sys.submit("p")
        own = self.sys.submit("p", branch="feature", os="other")
        for build, line in ((plain, "main 4 debian"), (own, "feature 4 debian")):
            self.assertEqual(self.sys.wait_build(build), (build, "success"))
            self.assertTrue(self.sys.read_log(build).endswith(f"\n{line}\n"), self.sys.read_log(build))
        self.assertEqual(self.sys.build_prop(own, "Properties"),
                         {"branch": "feature", "jobs": "4", "os": "debian", "workername": "w1"})

    def test_steps_run_with_the_worker_umask(self):
        """umask in the worker's own file (default 022) is the steps' umask,
        whatever the worker was started with; a SIGHUP applies a new one."""
        self.sys.write_config("""
            [master]
            [worker w1]
            type = local
            [worker w2]
            type = local
            [builder u1]
            workers = w1
            step.1 = umask; rm -f f; touch f; stat -c %a f
            [builder u2]
            workers = w2
            step.1 = umask; rm -f f; touch f; stat -c %a f
            """)
        self.sys.start_master()
        os.makedirs(self.path("etc/workers"), exist_ok=True)
        w2_file = self.path("etc/workers/w2.ini")
        with open(w2_file, "w") as f:
            f.write("umask = 077\n")
        old = os.umask(0o002)  # what the workers are started with; their config wins
        try:
            self.sys.start_worker("w1")
            w2 = self.sys.start_worker("w2")
        finally:
            os.umask(old)
        for builder, expected in (("u1", "0022\n644\n"), ("u2", "0077\n600\n")):
            build = self.sys.submit(builder)
            self.assertEqual(self.sys.wait_build(build), (build, "success"), self.sys.read_log(build))
            self.assertEqual(self.sys.read_log(build), f"--- step 1/1: umask; rm -f f; touch f; stat -c %a f\n{expected}")
        with open(w2_file, "w") as f:
            f.write("umask = 027\n")
        w2.signal(signal.SIGHUP)
        wait_for(lambda: "umask 0027" in w2.log(), 10, "the worker's reload")
        build = self.sys.submit("u2")
        self.assertEqual(self.sys.wait_build(build), (build, "success"))
        self.assertTrue(self.sys.read_log(build).endswith("\n0027\n640\n"), self.sys.read_log(build))

    def test_success_runs_steps_in_order_with_environment_and_properties(self):
        self.sys.write_config(master_ini(
            {"w1": "property.color = blue\nproperty.shared = from-worker"},
            {"hello": (["w1"], ["pwd", "env | grep ^BUILDYARD_ | sort", "echo third step"])}))
        self.sys.start_master()
        self.sys.start_worker("w1")
        monitor = SignalMonitor(self.sys, "type=signal,interface=org.buildyard.Master1,member=BuildFinished")

        build = self.sys.submit("hello", **{"shared": "from-submit", "extra": "x y", "my.key": "v",
                                            "workername": "bogus"})
        self.assertEqual(self.sys.wait_build(build), (build, "success"))

        props = all_properties(self.sys, self.sys.build_path(build), BUILD1)
        self.assertEqual(props["Properties"], {"color": "blue", "shared": "from-worker", "extra": "x y",
                                               "my.key": "v", "workername": "w1"})
        self.assertEqual(props["Id"], build)
        self.assertEqual(props["Builder"], "hello")
        self.assertEqual(props["Worker"], "w1")
        self.assertEqual(props["State"], "finished")
        self.assertEqual(props["Result"], "success")
        self.assertEqual(props["ExitStatus"], 0)
        self.assertEqual(props["RetriedAs"], 0)
        self.assertEqual(props["RequestId"], build)
        self.assertGreater(props["SubmittedAt"], 0)
        self.assertLessEqual(props["SubmittedAt"], props["StartedAt"])
        self.assertLessEqual(props["StartedAt"], props["FinishedAt"])
        self.assertLessEqual(props["FinishedAt"], time.time() * 1e6 + 1e6)

        log = self.sys.read_log(build)
        lines = log.split("\n")
        builddir = os.path.realpath(os.path.join(self.sys.dir, "workers", "w1", "hello"))
        self.assertIn(builddir, lines, log)
        for expected in [f"BUILDYARD_BUILD_ID={build}", "BUILDYARD_BUILDER=hello", "BUILDYARD_WORKER=w1",
                         "BUILDYARD_PROP_color=blue", "BUILDYARD_PROP_shared=from-worker",
                         "BUILDYARD_PROP_extra=x y", "BUILDYARD_PROP_my_key=v", "BUILDYARD_PROP_workername=w1"]:
            self.assertIn(expected, lines, log)
        # In order: pwd's output, then the environment, then the third step.
        self.assertLess(lines.index(builddir), lines.index("BUILDYARD_BUILDER=hello"), log)
        self.assertLess(lines.index("BUILDYARD_BUILDER=hello"), lines.index("third step"), log)

        path = self.sys.build_path(build)
        got = monitor.wait("BuildFinished", lambda p, args: args and args[0] == path)
        self.assertEqual(got[0][1], [path, "success"])

    def test_first_failing_step_ends_the_build(self):
        marker = self.path("marker")
        self.sys.write_config(master_ini(
            ["w1"],
            {"b": (["w1"], ["echo step one", "echo step two && exit 3", f"touch {marker}"])}))
        self.sys.start_master()
        self.sys.start_worker("w1")
        build = self.sys.submit("b")
        self.assertEqual(self.sys.wait_build(build), (build, "failure"))
        self.assertEqual(self.sys.build_prop(build, "ExitStatus"), 3)
        self.assertEqual(self.sys.build_prop(build, "CurrentStep"), 2)
        self.assertFalse(os.path.exists(marker), "step 3 ran after step 2 failed")
        log = self.sys.read_log(build)
        self.assertIn("step one\n", log)
        self.assertIn("step two\n", log)


class Logs(BuildTest):
    def test_read_log_while_running_and_slices(self):
        self.sys.write_config(master_ini(
            ["w1"],
            {"b": (["w1"], [f"echo early-line && {self.wait_go()} && echo late-line"])}))
        self.sys.start_master()
        self.sys.start_worker("w1")
        build = self.sys.submit("b")
        wait_for(lambda: "early-line" in self.sys.read_log(build), 10, "the first line in ReadLog")
        self.assertEqual(self.sys.build_prop(build, "State"), "running")
        self.assertNotIn("late-line", self.sys.read_log(build).split("\n"))

        self.go()
        self.assertEqual(self.sys.wait_build(build), (build, "success"))
        full = self.sys.read_log(build).encode()
        self.assertIn(b"early-line\n", full)
        self.assertIn(b"late-line\n", full)
        self.assertLess(full.index(b"early-line"), full.index(b"late-line"))

        n = len(full)
        for offset, size in [(0, 5), (3, 10), (n - 4, 100), (n // 2, n), (n, 10), (n + 100, 10), (0, 0),
                             (0, n + 1000)]:
            self.assertEqual(read_log_slice(self.sys, build, offset, size), full[offset:offset + size],
                             f"ReadLog({offset}, {size})")

    def test_read_log_of_pending_build_is_empty(self):
        self.sys.write_config(master_ini(["w1"], {"b": (["w1"], ["true"])}))
        self.sys.start_master()
        build = self.sys.submit("b")  # no worker: stays pending
        self.assertEqual(self.sys.build_prop(build, "State"), "pending")
        self.assertEqual(read_log_slice(self.sys, build, 0, 1000), b"")


class Cancel(BuildTest):
    def config(self, step, kill_timeout=None):
        self.sys.write_config(master_ini(
            ["w1", "w2"],
            {"b": (["w1"], [step, f'touch {self.path("after-cancel")}']), "offline": (["w2"], ["true"])}))
        if kill_timeout is not None:
            with open(os.path.join(self.sys.dir, "etc", "workers", "w1.ini"), "w") as f:
                f.write(f"master = bus\nkill_timeout = {kill_timeout}\n")

    def start_sleeper(self):
        build = self.sys.submit("b")
        wait_for(lambda: self.lines("pid"), 10, "the step to start its sleep")
        pid = int(self.lines("pid")[0])
        self.assertFalse(process_gone(pid))
        self.assertEqual(self.sys.build_prop(build, "State"), "running")
        return build, pid

    def test_cancel_running_build_kills_process_group(self):
        self.config(f"sleep 300 & echo $! > {self.path('pid')}; wait")
        self.sys.start_master()
        self.sys.start_worker("w1")
        build, pid = self.start_sleeper()
        self.cancel(build)
        self.assertEqual(self.sys.wait_build(build, timeout=10), (build, "cancelled"))
        wait_for(lambda: process_gone(pid), 5, f"the step's sleep (pid {pid}) to end")
        self.assertFalse(os.path.exists(self.path("after-cancel")), "a step ran after the cancel")
        self.assertEqual(self.sys.worker_prop("w1", "RunningBuilds"), 0)

    def test_cancel_kills_with_sigkill_after_kill_timeout(self):
        # The step ignores SIGTERM, so only the SIGKILL after kill_timeout ends it.
        self.config(f"trap '' TERM; sleep 300 & echo $! > {self.path('pid')}; wait",
                    kill_timeout=1)
        self.sys.start_master()
        self.sys.start_worker("w1")
        build, pid = self.start_sleeper()
        t0 = time.monotonic()
        self.cancel(build)
        self.assertEqual(self.sys.wait_build(build, timeout=15), (build, "cancelled"))
        elapsed = time.monotonic() - t0
        wait_for(lambda: process_gone(pid), 5, f"the step's sleep (pid {pid}) to end")
        self.assertGreaterEqual(elapsed, 0.9, "the step ignored SIGTERM, yet ended before kill_timeout")

    def test_cancel_pending_build_ends_at_once(self):
        self.config("true")
        self.sys.start_master()
        build = self.sys.submit("offline")  # w2 never attaches
        self.assertEqual(self.sys.build_prop(build, "State"), "pending")
        self.assertEqual(self.master_prop("PendingBuilds"), 1)
        self.cancel(build)
        props = all_properties(self.sys, self.sys.build_path(build), BUILD1)
        self.assertEqual((props["State"], props["Result"]), ("finished", "cancelled"))
        self.assertGreaterEqual(props["FinishedAt"], props["SubmittedAt"])
        self.assertEqual(self.master_prop("PendingBuilds"), 0)
        self.assertEqual(self.list_builds()[build][2:], ("finished", "cancelled"))

    def test_errors(self):
        self.config("true")
        self.sys.start_master()
        self.sys.start_worker("w1")
        build = self.sys.submit("b")
        self.sys.wait_build(build)
        path = self.sys.build_path(build)
        self.assertEqual(bus_error(self.sys, path, "org.buildyard.Build1.Cancel"),
                         "org.buildyard.Error.AlreadyFinished")
        self.assertEqual(bus_error(self.sys, MASTER_PATH, "org.buildyard.Master1.GetBuild", "uint64:4242"),
                         "org.buildyard.Error.NoSuchBuild")
        self.assertEqual(bus_error(self.sys, MASTER_PATH, "org.buildyard.Master1.SubmitBuild", "string:nope",
                                   "dict:string:string:"),
                         "org.buildyard.Error.NoSuchBuilder")
        self.assertEqual(bus_error(self.sys, MASTER_PATH, "org.buildyard.Master1.GetBuild", f"uint64:{build}"),
                         None)


class Dispatch(BuildTest):
    def trace_steps(self):
        trace = self.path("trace")
        return (f"flock {trace} -c 'echo start $BUILDYARD_WORKER $BUILDYARD_BUILD_ID >> {trace}'",
                f"flock {trace} -c 'echo end $BUILDYARD_WORKER $BUILDYARD_BUILD_ID >> {trace}'")

    def max_concurrency(self):
        """{worker: most builds it ran at once}, from the trace file."""
        now, most = {}, {}
        for line in self.lines("trace"):
            what, worker, _ = line.split()
            now[worker] = now.get(worker, 0) + (1 if what == "start" else -1)
            most[worker] = max(most.get(worker, 0), now[worker])
        return most

    def test_least_busy_and_max_builds(self):
        start, end = self.trace_steps()
        self.sys.write_config(master_ini(
            {"w1": "max_builds = 2", "w2": "max_builds = 2"},
            {"b": (["w1", "w2"], [start, self.wait_go(), end])}))
        self.sys.start_master()
        self.sys.start_worker("w1")
        self.sys.start_worker("w2")

        # Two builds on two idle workers: one each.
        first = [self.sys.submit("b") for _ in range(2)]
        wait_for(lambda: all(self.sys.build_prop(b, "State") == "running" for b in first), 10, "2 running")
        self.assertEqual(sorted(self.sys.build_prop(b, "Worker") for b in first), ["w1", "w2"])

        builds = first + [self.sys.submit("b") for _ in range(4)]
        wait_for(lambda: self.master_prop("RunningBuilds") == 4, 10, "4 running builds")
        wait_for(lambda: len(self.lines("trace")) == 4, 10, "4 steps started")
        states = [self.sys.build_prop(b, "State") for b in builds]
        self.assertEqual(states.count("running"), 4, states)
        self.assertEqual(states.count("pending"), 2, states)
        self.assertEqual(self.master_prop("PendingBuilds"), 2)
        self.assertEqual(self.sys.worker_prop("w1", "RunningBuilds"), 2)
        self.assertEqual(self.sys.worker_prop("w2", "RunningBuilds"), 2)
        self.assertEqual(self.sys.worker_prop("w1", "State"), "building")

        self.go()
        for b in builds:
            self.assertEqual(self.sys.wait_build(b), (b, "success"))
        starts = [line for line in self.lines("trace") if line.startswith("start")]
        self.assertEqual(len(starts), 6)
        self.assertEqual(self.max_concurrency(), {"w1": 2, "w2": 2})
        self.assertEqual(self.master_prop("RunningBuilds"), 0)
        self.assertEqual(self.master_prop("PendingBuilds"), 0)

    def test_hundred_builds_each_run_once(self):
        ran = self.path("ran")
        self.sys.write_config(master_ini(
            {"w1": "max_builds = 3", "w2": ""},
            {"b": (["w1", "w2"], [f"echo $BUILDYARD_BUILD_ID >> {ran}"])}))
        self.sys.start_master()
        self.sys.start_worker("w1")
        self.sys.start_worker("w2")

        submitted, errors = [], []

        def submitter(n):
            try:
                for _ in range(n):
                    submitted.append(self.sys.submit("b"))
            except Exception as e:  # reported below
                errors.append(e)
        threads = [threading.Thread(target=submitter, args=(25,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(set(submitted)), 100)

        def all_finished():
            listed = self.list_builds()
            return listed if all(listed.get(b, ("", "", ""))[2] == "finished" for b in submitted) else None
        listed = wait_for(all_finished, 60, "100 builds to finish")
        self.assertEqual(set(listed), set(submitted))
        self.assertEqual({v[3] for v in listed.values()}, {"success"})
        self.assertTrue({v[1] for v in listed.values()} <= {"w1", "w2"})
        ids = [int(x) for x in self.lines("ran")]
        self.assertEqual(sorted(ids), sorted(submitted), "each build must run exactly once")

    def test_builder_runs_only_on_its_workers(self):
        trace = self.path("trace")
        self.sys.write_config(master_ini(
            {"w1": "max_builds = 1", "w2": "max_builds = 1", "w3": ""},
            {"a": (["w1", "w2"], [f"echo $BUILDYARD_BUILDER $BUILDYARD_WORKER >> {trace}", self.wait_go()]),
             "other": (["w3"], [f"echo $BUILDYARD_BUILDER $BUILDYARD_WORKER >> {trace}"])}))
        self.sys.start_master()
        for w in ("w1", "w2", "w3"):
            self.sys.start_worker(w)
        a = [self.sys.submit("a") for _ in range(4)]
        wait_for(lambda: self.master_prop("RunningBuilds") == 2, 10, "2 running builds")
        # w3 is idle and unlimited, yet builder a's builds wait for w1 and w2.
        self.assertEqual(self.master_prop("PendingBuilds"), 2)
        self.assertEqual(self.sys.worker_prop("w3", "RunningBuilds"), 0)
        self.assertEqual(self.sys.worker_prop("w3", "State"), "idle")
        other = [self.sys.submit("other") for _ in range(3)]
        for b in other:
            self.assertEqual(self.sys.wait_build(b), (b, "success"))
        self.go()
        for b in a:
            self.assertEqual(self.sys.wait_build(b), (b, "success"))
        for b in a:
            self.assertIn(self.sys.build_prop(b, "Worker"), ("w1", "w2"))
        for b in other:
            self.assertEqual(self.sys.build_prop(b, "Worker"), "w3")
        seen = sorted(set(self.lines("trace")))
        self.assertTrue(set(seen) <= {"a w1", "a w2", "other w3"}, seen)
        self.assertEqual(len(self.lines("trace")), 7)


if __name__ == "__main__":
    unittest.main()
