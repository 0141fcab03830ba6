"""No rerun beside an orphan, without systemd: the worker is a child
subreaper and finds a build's processes by their environment.

The red-team trials: a build whose step sleeps 3 s (or ignores SIGTERM and
first forks a daemon that leaves its process group with setsid), its worker
killed with kill -9 while the queue is empty, the worker started again.
The steps log under a lock (tests/lib/orphan-step.sh); the rerun's first
line names every process of the first run still alive when it started,
and must name none. Four workers take one trial each per round, five
rounds: 20 trials, each with its own worker and log."""

import os
import signal
import unittest

from harness import SOURCE, SystemTest, process_gone, wait_for

STEP = os.path.join(SOURCE, "tests", "lib", "orphan-step.sh")
WORKERS = ["w1", "w2", "w3", "w4"]
ROUNDS = 5


def starttime(pid):
    """The start time of a process that has not exited (a zombie has); None if none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def describe(pid):
    """What a process is and where it hangs, for a failure message."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/status") as f:
            status = {k: v.strip() for k, _, v in (line.partition(":") for line in f)}
    except OSError as e:
        return f"process {pid}: {e}"
    return f"process {pid} ({cmd}) still alive: state {status.get('State')}, parent {status.get('PPid')}"


class Trial:
    """One request of a pinned builder, with the log its steps write."""

    def __init__(self, system, worker, mode, number):
        self.system = system
        self.worker = worker
        self.mode = mode
        self.log = os.path.join(system.dir, f"trial-{number}.log")
        self.build = system.submit(f"b-{worker}", log=self.log, mode=mode)

    def lines(self):
        try:
            with open(self.log) as f:
                return [line.split() for line in f.read().splitlines()]
        except FileNotFoundError:
            return []

    def pids(self, build):
        return [(int(p[2]), p[3]) for p in self.lines() if p[0] == "pid" and int(p[1]) == build]

    def alive(self, build):
        return [pid for pid, start in self.pids(build) if starttime(pid) == start]

    def ready(self, build):
        return ["ready", str(build)] in self.lines()

    def starts(self):
        return [line for line in self.lines() if line[0] == "start"]


class OrphanTest(SystemTest):
    def setUp(self):
        super().setUp()
        self.addCleanup(self.kill_registered)
        self.trials = []
        builders = "".join(f"""
            [builder b-{w}]
            workers = {w}
            step.1 = sh {STEP} "$BUILDYARD_PROP_log" "$BUILDYARD_PROP_mode"
            """ for w in WORKERS)
        # lost_build_grace is long: every rerun below must be the worker's
        # own confirmation, not the grace running out.
        workers = "".join(f"""
            [worker {w}]
            type = local
            lost_build_grace = 120
            """ for w in WORKERS)
        self.sys.write_config("""
            [master]
            listen =
            [builder slow]
            workers = w1
            timeout = 1
            step.1 = echo started; sleep 30
            """ + workers + builders)
        for w in WORKERS:
            with open(os.path.join(self.sys.dir, "etc", "workers", f"{w}.ini"), "w") as f:
                f.write("kill_timeout = 1\n")
        self.sys.start_master()
        for w in WORKERS:
            self.sys.start_worker(w)

    def kill_registered(self):
        for trial in self.trials:
            for line in trial.lines():
                if line[0] == "pid" and starttime(int(line[2])) == line[3]:
                    try:
                        os.kill(int(line[2]), signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def test_twenty_trials_never_rerun_beside_the_orphan(self):
        self.assertIn("subreaper", self.sys.workers["w1"].log())
        for rnd in range(ROUNDS):
            trials = [Trial(self.sys, w, "stubborn" if (i + rnd) % 2 else "sleep", rnd * len(WORKERS) + i)
                      for i, w in enumerate(WORKERS)]
            self.trials += trials
            for t in trials:
                wait_for(lambda t=t: t.ready(t.build), 10, f"trial {t.log} to start")
            for w in WORKERS:
                self.sys.workers[w].signal(signal.SIGKILL)
            for w in WORKERS:
                self.sys.workers[w].wait()
            for t in trials:
                wait_for(lambda t=t: self.sys.build_prop(t.build, "State") == "cleanup", 5,
                         f"build {t.build} to wait for cleanup")
                # The scenario is real: the first run's processes outlived
                # their worker, and the build is not rerun beside them.
                self.assertTrue(t.alive(t.build), f"{t.log}: the first run is already gone")
                self.assertEqual(self.sys.build_prop(t.build, "Result"), "")
                self.assertEqual(self.sys.build_prop(t.build, "RetriedAs"), 0)
            for w in WORKERS:
                self.sys.start_worker(w, wait_attached=False)
            for t in trials:
                final, result = self.sys.wait_build(t.build, 30, follow_retry=True)
                self.assertEqual(result, "success", self.sys.read_log(final))
                self.assertNotEqual(final, t.build)
                self.assertEqual(self.sys.build_prop(t.build, "Result"), "retry")
                starts = t.starts()
                self.assertEqual(len(starts), 2, f"{t.log}: {starts}")
                self.assertEqual(starts[1], ["start", str(final), "alive:"],
                                 f"{t.log}: the rerun started beside the first run")
                # The rerun's own daemon ended with its build.
                self.assertEqual(t.alive(final), [], f"{t.log}: the rerun left processes")
                self.assertEqual(t.alive(t.build), [])

    def test_a_lost_workers_builds_wait_and_rerun_together(self):
        # Two builds on one worker: their wait for cleanup is one store
        # commit, and so are their ends when the worker is back.
        trials = [Trial(self.sys, "w3", mode, 300 + i) for i, mode in enumerate(("sleep", "stubborn"))]
        self.trials += trials
        for t in trials:
            wait_for(lambda t=t: t.ready(t.build), 10, f"trial {t.log} to start")
        self.assertEqual(self.sys.worker_prop("w3", "RunningBuilds"), 2)
        self.sys.workers["w3"].signal(signal.SIGKILL)
        self.sys.workers["w3"].wait()
        for t in trials:
            wait_for(lambda t=t: self.sys.build_prop(t.build, "State") == "cleanup", 5,
                     f"build {t.build} to wait for cleanup")
        self.assertEqual(self.sys.worker_prop("w3", "RunningBuilds"), 0)
        self.sys.start_worker("w3", wait_attached=False)
        reruns = set()
        for t in trials:
            final, result = self.sys.wait_build(t.build, 30, follow_retry=True)
            self.assertEqual(result, "success", self.sys.read_log(final))
            self.assertEqual(self.sys.build_prop(t.build, "Result"), "retry")
            self.assertEqual(self.sys.build_prop(t.build, "RetriedAs"), final)
            starts = t.starts()
            self.assertEqual(starts[1], ["start", str(final), "alive:"],
                             f"{t.log}: the rerun started beside the first run")
            reruns.add(final)
        self.assertEqual(len(reruns), 2)

    def test_cancel_kills_a_setsid_daemon(self):
        t = Trial(self.sys, "w2", "stubborn", 100)
        self.trials.append(t)
        wait_for(lambda: t.ready(t.build), 10, "the step to start")
        daemon = t.pids(t.build)[1][0]
        self.assertNotEqual(os.getsid(daemon), os.getsid(t.pids(t.build)[0][0]), "the daemon has its own session")
        self.sys.call(self.sys.build_path(t.build), "org.buildyard.Build1", "Cancel")
        self.assertEqual(self.sys.wait_build(t.build, 10), (t.build, "cancelled"))
        # The build ends only once every process of it has gone.
        self.assertEqual(t.alive(t.build), [], "\n".join([describe(pid) for pid in t.alive(t.build)] +
                                                         ["the worker's log:", self.sys.workers["w2"].log()]))
        self.assertTrue(process_gone(daemon))

    def test_timeout_ends_the_build_failure(self):
        build = self.sys.submit("slow")
        self.assertEqual(self.sys.wait_build(build, 15), (build, "failure"))
        log = self.sys.read_log(build)
        self.assertIn("started", log)
        self.assertIn("took longer than its timeout of 1 s", log)

    def test_a_worker_that_stays_away_is_given_up_after_lost_build_grace(self):
        self.sys.write_config("[worker w1]\nlost_build_grace = 1\n", "50-grace.ini")
        self.sys.call("/org/buildyard/Master1", "org.buildyard.Master1", "Reload")
        t = Trial(self.sys, "w1", "sleep", 200)
        self.trials.append(t)
        wait_for(lambda: t.ready(t.build), 10, "the step to start")
        self.sys.workers["w1"].signal(signal.SIGKILL)
        self.sys.workers["w1"].wait()
        wait_for(lambda: self.sys.build_prop(t.build, "State") == "cleanup", 5, "the build to wait for cleanup")
        wait_for(lambda: self.sys.build_prop(t.build, "Result") == "retry", 5, "lost_build_grace to pass")
        self.assertIn("did not come back within lost_build_grace (1 s)", self.sys.master.log())


if __name__ == "__main__":
    unittest.main()
