"""buildyard-masterd as a daemon: sd_notify (READY, STATUS, WATCHDOG),
--check-config, --help/--version, a second master, and SIGTERM."""

import os
import re
import signal
import sqlite3
import subprocess
import time
import unittest

from harness import (BIN, MASTER, MASTER_PATH, SOURCE, SystemTest, master_ini, sqlite_only, start_master_env,
                     wait_for)

PROGRAMS = ("buildyard-masterd", "buildyard-workerd", "buildyardctl")


def project_version():
    with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
        return re.search(r"project\(\s*buildyard\s+VERSION\s+([0-9.]+)", f.read()).group(1)


class DaemonTest(SystemTest):
    def check_config(self, config=None):
        return subprocess.run([os.path.join(BIN, "buildyard-masterd"), "--check-config", "--config",
                               config or self.sys.config_path],
                              capture_output=True, text=True, timeout=30, env=self.sys.env)


class Notify(DaemonTest):
    def test_ready_and_a_true_status_line(self):
        self.sys.write_config(master_ini({"w1": "max_builds = 1", "w2": ""}, {"b": (["w1"], [self.wait_go()])}))
        master = self.sys.start_master()  # waits for READY=1
        self.assertIn("READY=1", "\n".join(master.messages))
        self.sys.start_worker("w1")
        builds = [self.sys.submit("b") for _ in range(3)]
        master.wait_notify("STATUS=1/2 workers attached, 1 builds running, 2 pending")
        self.go()
        for b in builds:
            self.assertEqual(self.sys.wait_build(b), (b, "success"))
        master.wait_notify("STATUS=1/2 workers attached, 0 builds running, 0 pending")

    @sqlite_only("it stalls the master's loop with an exclusive lock on its SQLite file")
    def test_watchdog_pings(self):
        self.sys.write_config(master_ini(["w1"]))
        master = start_master_env(self.sys, {"WATCHDOG_USEC": "200000"})
        t0 = time.monotonic()
        wait_for(lambda: master.notified("WATCHDOG=1") >= 3, 2, "3 WATCHDOG=1 from the master in 2 s")
        first = master.notified("WATCHDOG=1")
        # And they keep coming.
        wait_for(lambda: master.notified("WATCHDOG=1") >= first + 3, 2, "more WATCHDOG=1 from the master")
        self.assertLess(time.monotonic() - t0, 4)

        # They come from the event loop, so a loop that hangs stops them (and
        # systemd would restart the master). Hang it: hold the state database
        # locked, and submit a build, whose write waits for the lock (up to
        # SQLite's busy timeout of 5 s) inside the loop.
        self.sys.write_config(master_ini(["w1"], {"b": (["w1"], ["true"])}))
        master.signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in master.log(), 10, "the reload")
        db = sqlite3.connect(os.path.join(self.sys.state_dir, "state.db"), isolation_level=None, timeout=10)
        try:
            db.execute("BEGIN EXCLUSIVE")
            submit = subprocess.Popen(["busctl", "--system", "call", MASTER, MASTER_PATH, "org.buildyard.Master1",
                                       "SubmitBuild", "sa{ss}", "b", "0"], env=self.sys.env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.addCleanup(submit.kill)
            time.sleep(0.5)  # the call reaches the master, whose loop then waits on the lock
            hung = master.notified("WATCHDOG=1")
            time.sleep(1.5)  # 7 watchdog periods
            self.assertEqual(master.notified("WATCHDOG=1"), hung, "WATCHDOG=1 while the loop was stuck")
        finally:
            db.execute("ROLLBACK")
            db.close()
        self.assertEqual(submit.wait(timeout=10), 0, submit.stderr.read())
        wait_for(lambda: master.notified("WATCHDOG=1") >= hung + 3, 3, "WATCHDOG=1 again once the loop runs")

    def test_worker_watchdog_pings(self):
        self.sys.write_config(master_ini(["w1"]))
        self.sys.start_master()
        env = dict(self.sys.env, WATCHDOG_USEC="200000")
        worker = self.sys._spawn("worker-w1-watchdog",
                                 [os.path.join(BIN, "buildyard-workerd"), "--name", "w1", "--basedir",
                                  self.path("w1")], env=env, notify=True)
        worker.wait_notify("READY=1")
        wait_for(lambda: worker.notified("WATCHDOG=1") >= 3, 2, "3 WATCHDOG=1 from the worker in 2 s")

        # They come from the event loop, so a loop that hangs stops them.
        # Hang it: with the master frozen, SIGTERM makes the worker call
        # Detach and wait for the answer (up to 2 s) inside the loop.
        self.sys.wait_attached("w1")
        self.sys.master.signal(signal.SIGSTOP)
        try:
            worker.signal(signal.SIGTERM)
            wait_for(lambda: "stopping (" in worker.log(), 5, "the worker to begin stopping")
            time.sleep(0.2)
            hung = worker.notified("WATCHDOG=1")
            time.sleep(1.2)  # 6 watchdog periods, within the 2 s the Detach call waits
            self.assertEqual(worker.notified("WATCHDOG=1"), hung, "WATCHDOG=1 while the loop was stuck")
            self.assertEqual(worker.wait(timeout=10), 0, worker.log())
        finally:
            self.sys.master.signal(signal.SIGCONT)
        self.assertIn("Detach from org.buildyard.Master1 failed", worker.log())


class CheckConfig(DaemonTest):
    def test_good_config(self):
        self.sys.write_config(master_ini(["w1", "w2"], {"b": (["w1", "w2"], ["true"])}))
        dropin = self.sys.write_config("""
            [builder extra]
            workers = w2
            step.1 = true
            """, name="10-extra.ini")
        r = self.check_config()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("valid", r.stdout)
        self.assertIn("2 workers, 2 builders", r.stdout)
        self.assertIn(self.sys.config_path, r.stdout)
        self.assertIn(dropin, r.stdout)
        self.assertEqual(r.stderr, "")

    def test_a_default_master_address_is_a_warning(self):
        self.sys.write_config("""\
            [master]
            listen = 127.0.0.1:9989
            [worker vm1]
            type = latent
            backend = libvirt
            libvirt.uri = test:///default
            libvirt.xml = /etc/buildyard/vm1.xml
            [builder b]
            workers = vm1
            step.1 = true
            """)
        r = self.check_config()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 workers, 1 builders", r.stdout)
        self.assertRegex(r.stderr, rf"^warning: {re.escape(self.sys.config_path)}:3: \[worker vm1\] master_address: "
                                   r"not set, so the libvirt machine dials \S+:9989 .*10\.0\.2\.2:9989\)\n$")

    def write_bad_config(self):
        self.sys.write_config("""\
            [master]
            listen =
            [worker w1]
            type = local
            max_builds = lots
            colour = red
            [builder b]
            workers = w1, ghost
            step.1 = true
            [bogus]
            """)
        dropin = self.sys.write_config("""\
            [builder c]
            workers = w1
            """, name="20-c.ini")
        main = self.sys.config_path
        return [(main, 5, "[worker w1] max_builds: "), (main, 6, "[worker w1] colour: "),
                (main, 8, "[builder b] workers: "), (main, 10, "[bogus]"), (dropin, 1, "[builder c]")]

    def test_bad_config(self):
        expected = self.write_bad_config()
        r = self.check_config()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        errors = r.stderr.splitlines()
        for file, line, what in expected:
            prefix = f"{file}:{line}: {what}"
            matching = [e for e in errors if e.startswith(prefix)]
            self.assertTrue(matching, f"no error starting with {prefix!r} in:\n{r.stderr}")
            self.assertRegex(matching[0], r"^\S+:\d+: \[[^\]]+\]( [\w.]+)?: \S.*$")
        self.assertIn("ghost", r.stderr)

    def test_master_refuses_a_bad_config(self):
        expected = self.write_bad_config()
        master = self.sys.start_master(wait_ready=False)
        self.assertEqual(master.wait(timeout=20), 1)
        log = master.log()
        for file, line, what in expected:
            self.assertIn(f"{file}:{line}: {what}", log)
        self.assertFalse(any("READY=1" in m for m in master.messages), master.messages)

    def test_master_refuses_a_missing_config(self):
        self.assertFalse(os.path.exists(self.sys.config_path))
        master = self.sys.start_master(wait_ready=False)
        self.assertEqual(master.wait(timeout=20), 1)
        self.assertIn(self.sys.config_path, master.log())
        self.assertFalse(any("READY=1" in m for m in master.messages), master.messages)
        r = self.check_config()
        self.assertEqual(r.returncode, 1)
        self.assertIn(self.sys.config_path, r.stderr)


class CommandLine(unittest.TestCase):
    def run_program(self, *argv):
        return subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], capture_output=True, text=True, timeout=30)

    def test_help(self):
        for program in PROGRAMS:
            with self.subTest(program=program):
                r = self.run_program(program, "--help")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.startswith(f"Usage: {program}"), r.stdout)
                self.assertIn("--help", r.stdout)
                self.assertIn("--version", r.stdout)
        self.assertIn("--check-config", self.run_program("buildyard-masterd", "--help").stdout)
        self.assertIn("--name", self.run_program("buildyard-workerd", "--help").stdout)
        self.assertIn("submit", self.run_program("buildyardctl", "--help").stdout)

    def test_version(self):
        version = project_version()
        for program in PROGRAMS:
            with self.subTest(program=program):
                r = self.run_program(program, "--version")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.strip(), f"{program} {version}")

    def test_unknown_option(self):
        for program in PROGRAMS:
            with self.subTest(program=program):
                r = self.run_program(program, "--no-such-option")
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("no-such-option", r.stderr)

    def test_stray_argument(self):
        """A word no option takes is refused with a usage line, never ignored:
        `--check-config FILE` must not check the default file instead."""
        good = os.path.join(SOURCE, "etc", "master.ini")
        cases = [
            ("buildyard-masterd", "--check-config", good),
            ("buildyard-masterd", "--check-config", "--config", good, "extra"),
            ("buildyard-latentd", "--check-config", "--config", good, "extra"),
            ("buildyard-workerd", "--name", "w1", "extra"),
        ]
        for argv in cases:
            with self.subTest(argv=argv):
                r = self.run_program(*argv)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertIn(f"{argv[0]}: unexpected argument '{argv[-1]}'", r.stderr)
                self.assertIn(f"Usage: {argv[0]} ", r.stderr)


class Lifecycle(DaemonTest):
    def config(self):
        self.sys.write_config(master_ini(
            ["w1"],
            {"b": (["w1"], [f'echo $BUILDYARD_BUILD_ID >> {self.path("ran")} && {self.wait_go()}'])}))

    def test_version_property(self):
        self.config()
        self.sys.start_master()
        self.assertEqual(self.sys.get(MASTER_PATH, "org.buildyard.Master1", "Version"), project_version())

    def test_second_master_refuses_to_start(self):
        self.config()
        first = self.sys.start_master()
        argv = [os.path.join(BIN, "buildyard-masterd"), "--config", self.sys.config_path,
                "--state-directory", self.path("state2")]
        second = self.sys._spawn("master2", argv, notify=True)
        self.assertEqual(second.wait(timeout=20), 1)
        self.assertIn("org.buildyard.Master1", second.log())
        self.assertRegex(second.log(), r"another buildyard-masterd|already")
        self.assertFalse(any("READY=1" in m for m in second.messages))
        self.assertTrue(first.alive())
        self.assertEqual(self.sys.get(MASTER_PATH, "org.buildyard.Master1", "PendingBuilds"), 0)

    def test_second_master_leaves_the_state_alone(self):
        # Started by mistake on the same state directory, a second master must
        # not touch the first one's builds before it finds the name taken.
        self.config()
        self.sys.start_master()
        self.sys.start_worker("w1")
        build = self.sys.submit("b")
        wait_for(lambda: os.path.exists(self.path("ran")), 10, "the build to start")
        argv = [os.path.join(BIN, "buildyard-masterd"), "--config", self.sys.config_path,
                "--state-directory", self.sys.state_dir]
        second = self.sys._spawn("master2", argv, notify=True)
        self.assertEqual(second.wait(timeout=20), 1)
        self.assertNotIn("rerunning", second.log())
        rows = self.sys.call(MASTER_PATH, "org.buildyard.Master1", "ListBuilds", "t", 0)[0]
        self.assertEqual([(int(r[0]), r[3]) for r in rows], [(build, "running")])
        self.go()
        self.assertEqual(self.sys.wait_build(build), (build, "success"))
        self.assertEqual(self.sys.build_prop(build, "RetriedAs"), 0)
        # After a restart nothing is left to run again.
        self.sys.master.signal(signal.SIGTERM)
        self.assertEqual(self.sys.master.wait(timeout=10), 0)
        self.sys.start_master()
        self.assertEqual(self.sys.get(MASTER_PATH, "org.buildyard.Master1", "PendingBuilds"), 0)
        rows = self.sys.call(MASTER_PATH, "org.buildyard.Master1", "ListBuilds", "t", 0)[0]
        self.assertEqual([(int(r[0]), r[3], r[4]) for r in rows], [(build, "finished", "success")])

    def test_sigterm_exits_zero_promptly(self):
        self.config()
        master = self.sys.start_master()
        self.sys.start_worker("w1")
        self.sys.submit("b")
        wait_for(lambda: os.path.exists(self.path("ran")), 10, "the build to start")
        t0 = time.monotonic()
        master.signal(signal.SIGTERM)
        self.assertEqual(master.wait(timeout=10), 0)
        self.assertLess(time.monotonic() - t0, 3)
        wait_for(lambda: any("STOPPING=1" in m for m in master.messages), 2, "STOPPING=1")


if __name__ == "__main__":
    unittest.main()
