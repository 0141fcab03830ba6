"""kill -9 of a worker or of the master: builds end "retry", run again, and
nothing submitted is lost."""

import json
import os
import random
import signal
import threading
import unittest

from harness import MASTER, MASTER_PATH, SystemTest, all_properties, master_ini, process_gone, wait_for

BUILD1 = "org.buildyard.Build1"
MASTER1 = "org.buildyard.Master1"


class CrashTest(SystemTest):
    def wait_go(self, name="go"):
        """A command that waits until the test creates the file `name`. It is
        a script because inih cuts config lines at 200 characters. It also
        ends when the test's directory is gone, so no loop outlives a test."""
        script = self.path(f"wait-{name}")
        with open(script, "w") as f:
            f.write(super().wait_go(name) + "\n")
        return f"sh {script}"

    def kill_step_groups(self, pidfile):
        """Ends the process groups of steps whose shells wrote `echo $$` to
        pidfile (the step's shell leads its group). Under systemd the worker's cgroup goes with the worker; here
        the test does it, so that only the rerun is left running."""
        for pid in self.lines(pidfile):
            try:
                os.killpg(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def build_props(self, build_id):
        return all_properties(self.sys, self.sys.build_path(build_id), BUILD1)

    def list_builds(self):
        rows = self.sys.call(MASTER_PATH, MASTER1, "ListBuilds", "t", 0)[0]
        return {int(r[0]): tuple(r[1:5]) for r in rows}

    def restart_master(self):
        self.sys.master.signal(signal.SIGKILL)
        self.sys.master.wait()
        self.sys.start_master()


class WorkerKilled(CrashTest):
    def config(self, workers):
        self.addCleanup(self.kill_step_groups, "pids")
        self.sys.write_config(master_ini(
            {"w1": "lost_build_grace = 2", "w2": ""},
            {"b": (workers, [f'echo $$ >> {self.path("pids")} && echo run >> {self.path("count")} && '
                             f'{self.wait_go()}'])}))

    def kill_worker_mid_build(self, name):
        build = self.sys.submit("b")
        wait_for(lambda: len(self.lines("count")) == 1, 10, "the step to start")
        self.assertEqual(self.sys.build_prop(build, "State"), "running")
        self.assertEqual(self.sys.build_prop(build, "Worker"), name)
        orphan = int(self.lines("pids")[0])
        self.sys.workers[name].signal(signal.SIGKILL)
        self.sys.workers[name].wait()
        # The master sees the connection close at once; the build waits for
        # its processes to be gone (test_orphans), here until w1's
        # lost_build_grace (2 s) has passed.
        wait_for(lambda: self.sys.build_prop(build, "State") == "cleanup", 3, "the build to wait for cleanup")
        self.assertEqual(self.sys.build_prop(build, "Result"), "")
        os.killpg(orphan, signal.SIGKILL)
        wait_for(lambda: self.sys.build_prop(build, "State") == "finished", 5, "the build to end")
        props = self.build_props(build)
        self.assertEqual(props["Result"], "retry")
        rerun = props["RetriedAs"]
        self.assertNotEqual(rerun, 0)
        self.assertNotEqual(rerun, build)
        rerun_props = self.build_props(rerun)
        self.assertEqual(rerun_props["RequestId"], build)
        self.assertEqual(rerun_props["Builder"], "b")
        self.assertFalse(self.sys.worker_prop(name, "Connected"))
        return build, rerun

    def test_rerun_when_the_worker_comes_back(self):
        self.config(["w1"])
        self.sys.start_master()
        self.sys.start_worker("w1")
        build, rerun = self.kill_worker_mid_build("w1")
        self.assertEqual(self.sys.build_prop(rerun, "State"), "pending")
        self.assertEqual(self.sys.get(MASTER_PATH, MASTER1, "PendingBuilds"), 1)
        self.assertEqual(self.sys.get(MASTER_PATH, MASTER1, "RunningBuilds"), 0)

        self.sys.start_worker("w1")
        wait_for(lambda: len(self.lines("count")) == 2, 10, "the rerun to start")
        self.go()
        self.assertEqual(self.sys.wait_build(build, follow_retry=True), (rerun, "success"))
        self.assertEqual(self.sys.build_prop(rerun, "Worker"), "w1")
        self.assertEqual(len(self.lines("count")), 2, "the step ran twice in all")

    def test_rerun_on_the_other_worker(self):
        self.config(["w1", "w2"])
        self.sys.start_master()
        self.sys.start_worker("w1")
        self.sys.start_worker("w2")
        build, rerun = self.kill_worker_mid_build("w1")
        wait_for(lambda: len(self.lines("count")) == 2, 10, "the rerun to start")
        self.assertEqual(self.sys.build_prop(rerun, "Worker"), "w2")
        self.go()
        self.assertEqual(self.sys.wait_build(build, follow_retry=True), (rerun, "success"))
        self.assertEqual(len(self.lines("count")), 2, "the step ran twice in all")


class MasterKilled(CrashTest):
    def test_restart_keeps_queue_and_history_and_reruns_the_running_build(self):
        self.addCleanup(self.kill_step_groups, "pids")
        self.sys.write_config(master_ini(
            {"w1": "max_builds = 1"},
            {"hist": (["w1"], ["echo history of $BUILDYARD_BUILD_ID"]),
             "bad": (["w1"], ["echo about to fail && exit 5"]),
             "slow": (["w1"], [f'echo $$ >> {self.path("pids")} && echo $BUILDYARD_BUILD_ID >> {self.path("ran")} && '
                               f'{self.wait_go()}'])}))
        self.sys.start_master()
        self.sys.start_worker("w1")

        # History: finished builds with their results and logs.
        hist = [self.sys.submit("hist", n=str(i)) for i in range(2)]
        bad = self.sys.submit("bad")
        history = {}
        for b in hist + [bad]:
            self.sys.wait_build(b)
            history[b] = (self.build_props(b), self.sys.read_log(b))
        self.assertEqual(history[bad][0]["Result"], "failure")

        # One running build and three pending ones (max_builds = 1).
        slow = [self.sys.submit("slow", n=str(i)) for i in range(4)]
        wait_for(lambda: len(self.lines("ran")) == 1, 10, "the first slow build to start")
        running, pending = slow[0], slow[1:]
        self.assertEqual([self.sys.build_prop(b, "State") for b in slow], ["running"] + ["pending"] * 3)
        before = {b: self.build_props(b) for b in pending}
        step_pid = int(self.lines("pids")[0])

        # The worker is frozen while the master restarts, so the test sees the
        # queue as the new master loaded it, before the worker is back.
        worker = self.sys.workers["w1"]
        worker.signal(signal.SIGSTOP)
        self.addCleanup(worker.signal, signal.SIGCONT)
        self.restart_master()
        self.assertFalse(self.sys.worker_prop("w1", "Connected"))
        props = self.build_props(running)
        self.assertEqual((props["State"], props["Result"]), ("finished", "retry"))
        rerun = props["RetriedAs"]
        self.assertNotIn(rerun, [0] + slow + hist + [bad])
        self.assertEqual(self.build_props(rerun)["RequestId"], running)
        self.assertEqual(self.build_props(rerun)["State"], "pending")
        for b in pending:
            after = self.build_props(b)
            self.assertEqual(after["State"], "pending", b)
            for key in ("Id", "Builder", "SubmittedAt", "Properties", "RequestId"):
                self.assertEqual(after[key], before[b][key], f"build {b}: {key}")
        self.assertEqual(self.sys.get(MASTER_PATH, MASTER1, "PendingBuilds"), 4)

        for b, (props, log) in history.items():
            self.assertEqual(self.build_props(b), props, f"history of build {b}")
            self.assertEqual(self.sys.read_log(b), log, f"log of build {b}")
        listed = self.list_builds()
        self.assertEqual(set(listed), set(hist + [bad] + slow + [rerun]))
        self.assertEqual(listed[bad][3], "failure")

        # The worker re-attaches by itself and ends the step of the lost build.
        worker.signal(signal.SIGCONT)
        self.sys.wait_attached("w1")
        wait_for(lambda: process_gone(step_pid), 10, "the worker to end the step of the lost build")
        self.go()
        for b in pending + [rerun]:
            self.assertEqual(self.sys.wait_build(b), (b, "success"))
        self.assertEqual(self.sys.wait_build(running, follow_retry=True), (rerun, "success"))
        ran = [int(x) for x in self.lines("ran")]
        self.assertEqual(sorted(ran), sorted(slow + [rerun]), "each build ran once, the lost one again as its rerun")

    def test_kill_at_any_moment(self):
        self.sys.write_config(master_ini(
            {"w1": "max_builds = 2", "w2": "max_builds = 2"},
            {"b": (["w1", "w2"], [f'echo $BUILDYARD_BUILD_ID >> {self.path("ran")}'])}))
        self.sys.start_master()
        self.sys.start_worker("w1")
        self.sys.start_worker("w2")
        replied = []  # build ids whose SubmitBuild got a reply

        def submit_until(stop):
            while not stop.is_set():
                r = self.sys.busctl("call", MASTER, MASTER_PATH, MASTER1, "SubmitBuild", "sa{ss}", "b", "1",
                                    "round", str(rnd), check=False)
                if r.returncode == 0:
                    replied.append(decode_id(json.loads(r.stdout)["data"][0]))

        for rnd in range(3):
            stop = threading.Event()
            thread = threading.Thread(target=submit_until, args=(stop,))
            start = len(replied)
            thread.start()
            target = start + random.randint(10, 30)
            try:
                wait_for(lambda: len(replied) >= target, 30, f"{target - start} replies in round {rnd}")
                self.sys.master.signal(signal.SIGKILL)
            finally:
                stop.set()
                thread.join()
            self.sys.master.wait()
            self.sys.start_master()
            for b in replied:
                self.assertEqual(decode_id(self.sys.build_path(b)), b)  # GetBuild knows it

        self.sys.wait_attached("w1")
        self.sys.wait_attached("w2")
        wait_for(lambda: all(v[2] == "finished" for v in self.list_builds().values()), 60, "every build to finish")
        finals = {}
        for b in replied:
            final, result = self.sys.wait_build(b, follow_retry=True)
            self.assertEqual(result, "success", f"request {b} ended as build {final}")
            finals[b] = final
        ran = [int(x) for x in self.lines("ran")]
        self.assertEqual(len(set(replied)), len(replied))
        self.assertTrue(set(replied) <= set(self.list_builds()))
        self.assertEqual(self.sys.get(MASTER_PATH, MASTER1, "PendingBuilds"), 0)
        # Every request that got a reply ran, as the build that finished it;
        # and no build ran twice (a rerun is a new build with a new id).
        missing = {b: f for b, f in finals.items() if f not in ran}
        self.assertEqual(missing, {}, "requests whose successful build never ran its step")
        twice = sorted({x for x in ran if ran.count(x) > 1})
        self.assertEqual(twice, [], "builds whose step ran more than once")


def decode_id(path):
    """The build id in a build's object path (sd_bus_path_encode escapes _XX)."""
    label = path.rsplit("/", 1)[1]
    out, i = "", 0
    while i < len(label):
        if label[i] == "_":
            out += chr(int(label[i + 1:i + 3], 16))
            i += 3
        else:
            out += label[i]
            i += 1
    return int(out)


if __name__ == "__main__":
    unittest.main()
