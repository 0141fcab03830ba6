"""Local workers: the identity rule, refusals, Info, Pause/Unpause, Shutdown,
detaching, and PropertiesChanged. Real master, real workers, private bus."""

import os
import platform
import signal
import socket
import unittest

from harness import (BIN, MASTER, MASTER_PATH, NOBODY_UID, SignalMonitor, SystemTest, bus_error, gate_step,
                     master_ini, open_gate, wait_for, wait_gate_reached)

WORKER1 = "org.buildyard.Worker1"
MASTER1 = "org.buildyard.Master1"


def config(workers=("w1",), builders=None, master_lines=""):
    """master.ini text: local workers, and builders as {name: (workers, [steps])}."""
    return master_ini(workers, builders, name="it", master_lines=master_lines)


def attach_error_as(system, name, uid):
    """Calls WorkerLink1.Attach(name, {}) as uid with dbus-send: (error name or None, stderr)."""
    r = system.run(["dbus-send", "--system", "--print-reply", f"--dest={MASTER}", MASTER_PATH,
                    "org.buildyard.WorkerLink1.Attach", f"string:{name}", "dict:string:string:"],
                   check=False, user=uid)
    if r.returncode == 0:
        return None, r.stdout
    first = r.stderr.strip().split(":", 1)[0]
    return (first[len("Error "):] if first.startswith("Error ") else r.stderr.strip()), r.stderr


class WorkersTest(SystemTest):

    def start(self, text):
        self.sys.write_config(text)
        self.sys.start_master()

    def wprop(self, name, prop):
        return self.sys.worker_prop(name, prop)

    # --- the identity rule ---------------------------------------------

    def test_untrusted_uid_is_refused_then_trusted_uid_attaches(self):
        s = self.sys
        self.start(config(builders={"b": (["w1"], ["id -u"])}))
        w = s.start_worker("w1", wait_attached=False, user=NOBODY_UID)
        rc = w.wait(timeout=10)
        self.assertNotEqual(rc, 0, f"an untrusted worker must exit non-zero; log:\n{w.log()}")
        refusals = [line for line in s.master.log().splitlines()
                    if "refused to attach worker 'w1'" in line and "not trusted" in line]
        self.assertTrue(refusals, s.master.log())
        self.assertIn(f"uid {NOBODY_UID}", refusals[0])
        # The worker says why: the master's own message reaches it.
        self.assertIn("not allowed to attach as worker 'w1'", w.log())
        self.assertIs(self.wprop("w1", "Connected"), False)
        self.assertEqual(self.wprop("w1", "State"), "offline")
        self.assertEqual(self.wprop("w1", "LastConnected"), 0)

        # trusted_uids admits that uid (picked up by a reload).
        s.write_config(config(master_lines=f"trusted_uids = {NOBODY_UID}", builders={"b": (["w1"], ["id -u"])}))
        s.call(MASTER_PATH, MASTER1, "Reload")
        w2 = s.start_worker("w1", user=NOBODY_UID)
        self.assertTrue(w2.alive())
        self.assertEqual(self.wprop("w1", "State"), "idle")
        bid = s.submit("b")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertIn(f"\n{NOBODY_UID}\n", s.read_log(bid), "the step runs as the worker's uid")

    def test_refused_caller_gets_access_denied(self):
        s = self.sys
        self.start(config())
        name, text = attach_error_as(s, "w1", NOBODY_UID)
        self.assertEqual(name, "org.buildyard.Error.AccessDenied", text)
        self.assertIn("uid 65534", s.master.log())
        self.assertIs(self.wprop("w1", "Connected"), False)
        # The worker process logs the master's refusal and stops trying.
        w = s.start_worker("w1", wait_attached=False, user=NOBODY_UID)
        self.assertNotEqual(w.wait(timeout=10), 0)
        self.assertIn("master refused to attach worker 'w1'", w.log())
        self.assertIn("trusted_uids", w.log())

    def test_undeclared_name_is_refused(self):
        s = self.sys
        self.start(config())
        w = s.start_worker("ghost", wait_attached=False)
        self.assertNotEqual(w.wait(timeout=10), 0, w.log())
        self.assertIn("unknown worker 'ghost'", s.master.log())
        self.assertIn("ghost", w.log())
        self.assertEqual(bus_error(s, MASTER_PATH, "org.buildyard.Master1.GetWorker", "string:ghost"),
                         "org.buildyard.Error.NoSuchWorker")
        self.assertEqual(attach_error_as(s, "ghost", 0)[0], "org.buildyard.Error.NoSuchWorker")
        self.assertEqual(s.get(MASTER_PATH, MASTER1, "ConnectedWorkers"), 0)

    def test_second_process_for_an_attached_name_is_refused(self):
        s = self.sys
        self.start(config(builders={"b": (["w1"], ["echo ran on $BUILDYARD_WORKER"])}))
        first = s.start_worker("w1")
        connected_at = self.wprop("w1", "LastConnected")

        second = s.start_worker("w1", wait_attached=False)
        self.assertNotEqual(second.wait(timeout=10), 0, second.log())
        self.assertIn("refused a second connection for worker 'w1'", s.master.log())
        self.assertIn("already attached", second.log())
        self.assertEqual(attach_error_as(s, "w1", 0)[0], "org.buildyard.Error.AlreadyAttached")

        # The first one is untouched and still runs builds.
        self.assertTrue(first.alive())
        self.assertIs(self.wprop("w1", "Connected"), True)
        self.assertEqual(self.wprop("w1", "LastConnected"), connected_at)
        bid = s.submit("b")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertEqual(s.build_prop(bid, "Worker"), "w1")

        # Once the first is dead, a new process takes the name.
        first.signal(signal.SIGKILL)
        s.wait_attached("w1", attached=False)
        third = s.start_worker("w1")
        self.assertTrue(third.alive())
        bid = s.submit("b")
        self.assertEqual(s.wait_build(bid), (bid, "success"))

    # --- Info ------------------------------------------------------------

    def test_a_local_worker_does_not_load_libcrypto(self):
        # Only remote handshakes need it; it is loaded on first use.
        s = self.sys
        self.start(config())
        s.start_worker("w1")
        with open(f"/proc/{s.workers['w1'].pid}/maps") as f:
            maps = f.read()
        self.assertIn("libsystemd", maps)  # the check reads the right process
        self.assertNotIn("libcrypto", maps)

    def test_info_property(self):
        s = self.sys
        self.start(config())
        with open(os.path.join(s.dir, "etc", "workers", "w1.ini"), "w") as f:
            f.write("admin = Jane Doe <jane@example.org>\n")
        s.start_worker("w1")
        info = self.wprop("w1", "Info")
        version = s.get(MASTER_PATH, MASTER1, "Version")
        worker_version = s.run([os.path.join(BIN, "buildyard-workerd"), "--version"]).stdout.split()[-1]
        self.assertEqual(version, worker_version)
        self.assertEqual(info, {
            "host": socket.gethostname(),
            "os": platform.freedesktop_os_release()["PRETTY_NAME"],
            "cpus": str(len(os.sched_getaffinity(0))),
            "version": version,
            "admin": "Jane Doe <jane@example.org>",
            "basedir": os.path.join(s.dir, "workers", "w1"),
            # Outside systemd the worker keeps its builds' processes as a
            # subreaper (buildyard-workerd(8)).
            "isolation": "subreaper",
        })

    # --- Pause / Unpause ---------------------------------------------------

    def test_paused_worker_gets_no_builds_and_stays_paused_across_restart(self):
        s = self.sys
        gate = gate_step(s)
        self.start(config(workers=("w1", "w2"),
                          builders={"both": (["w1", "w2"], [gate]), "only1": (["w1"], ["echo on $BUILDYARD_WORKER"])}))
        s.start_worker("w1")
        s.start_worker("w2")
        s.call(s.worker_path("w1"), WORKER1, "Pause", "s", "disk replacement")
        self.assertIs(self.wprop("w1", "Paused"), True)
        self.assertEqual(self.wprop("w1", "State"), "paused")
        self.assertEqual(self.wprop("w1", "PauseReason"), "disk replacement")

        # Least busy would pick idle w1 for the second build; paused, it gets neither.
        a = s.submit("both")
        wait_gate_reached(s, a)
        b = s.submit("both")
        wait_gate_reached(s, b)
        self.assertEqual(s.build_prop(a, "Worker"), "w2")
        self.assertEqual(s.build_prop(b, "Worker"), "w2")
        # A build only w1 may run waits, even though the master has dispatched since.
        c = s.submit("only1")
        open_gate(s, a)
        self.assertEqual(s.wait_build(a), (a, "success"))
        self.assertEqual(s.build_prop(c, "State"), "pending")
        self.assertEqual(s.build_prop(c, "Worker"), "")
        self.assertEqual(self.wprop("w1", "RunningBuilds"), 0)
        open_gate(s, b)
        self.assertEqual(s.wait_build(b), (b, "success"))
        self.assertEqual(s.build_prop(c, "State"), "pending")

        # Paused survives a master restart; the pending build too.
        s.master.stop()
        self.assertEqual(s.master.popen.returncode, 0, s.master.log())
        s.start_master()
        s.wait_attached("w1")
        s.wait_attached("w2")
        self.assertIs(self.wprop("w1", "Paused"), True)
        self.assertEqual(self.wprop("w1", "PauseReason"), "disk replacement")
        self.assertEqual(self.wprop("w1", "State"), "paused")
        self.assertEqual(s.build_prop(c, "State"), "pending")

        s.call(s.worker_path("w1"), WORKER1, "Unpause")
        self.assertIs(self.wprop("w1", "Paused"), False)
        self.assertEqual(self.wprop("w1", "PauseReason"), "")
        self.assertEqual(s.wait_build(c), (c, "success"))
        self.assertEqual(s.build_prop(c, "Worker"), "w1")
        self.assertIn("on w1", s.read_log(c))

    # --- Shutdown ----------------------------------------------------------

    def running_gated_build(self):
        """Worker w1 running a build of "b" that waits at its gate: (worker, build id)."""
        s = self.sys
        self.start(config(builders={"b": (["w1"], [gate_step(s)])}))
        w = s.start_worker("w1")
        a = s.submit("b")
        wait_gate_reached(s, a)
        return w, a

    def check_graceful_shutdown(self, w, a):
        """Worker w1 (w), shutting down gracefully while running build a:
        still attached and building, but it takes nothing new; it exits
        when a has finished and been reported."""
        s = self.sys
        b = s.submit("b")
        self.assertTrue(w.alive())
        self.assertIs(self.wprop("w1", "Connected"), True)
        self.assertEqual(s.build_prop(a, "State"), "running")
        self.assertEqual(s.build_prop(b, "State"), "pending")

        open_gate(s, a)
        self.assertEqual(s.wait_build(a), (a, "success"), "the running build finishes and is reported")
        self.assertEqual(w.wait(timeout=10), 0, w.log())
        s.wait_attached("w1", attached=False)
        self.assertEqual(s.build_prop(b, "State"), "pending")

    def test_graceful_shutdown_lets_the_build_finish(self):
        s = self.sys
        w, a = self.running_gated_build()
        s.call(s.worker_path("w1"), WORKER1, "Shutdown", "b", "true")
        self.check_graceful_shutdown(w, a)

    def test_worker_asks_for_its_own_graceful_shutdown_with_sigusr1(self):
        s = self.sys
        w, a = self.running_gated_build()
        w.signal(signal.SIGUSR1)
        wait_for(lambda: "worker w1 asks for a graceful shutdown" in s.master.log(), 10,
                 "the master to hear the worker's request")
        self.check_graceful_shutdown(w, a)

    def test_hard_shutdown_retries_the_build(self):
        s = self.sys
        w, a = self.running_gated_build()
        s.call(s.worker_path("w1"), WORKER1, "Shutdown", "b", "false")
        self.assertEqual(w.wait(timeout=5), 0, w.log())  # promptly: raises if it does not exit
        s.wait_attached("w1", attached=False)
        self.assertEqual(s.wait_build(a), (a, "retry"))
        rerun = int(s.build_prop(a, "RetriedAs"))
        self.assertNotEqual(rerun, 0)
        self.assertEqual(s.build_prop(rerun, "State"), "pending")
        self.assertEqual(s.build_prop(rerun, "RequestId"), s.build_prop(a, "RequestId"))

        s.start_worker("w1")
        wait_gate_reached(s, rerun)
        self.assertEqual(s.build_prop(rerun, "Worker"), "w1")
        open_gate(s, rerun)
        self.assertEqual(s.wait_build(rerun), (rerun, "success"))

    def test_shutdown_of_detached_worker(self):
        s = self.sys
        self.start(config())
        self.assertEqual(bus_error(s, s.worker_path("w1"), "org.buildyard.Worker1.Shutdown", "boolean:true"),
                         "org.buildyard.Error.NotAttached")
        self.assertEqual(bus_error(s, s.worker_path("w1"), "org.buildyard.Worker1.Shutdown", "boolean:false"),
                         "org.buildyard.Error.NotAttached")

    def test_build_queued_before_the_worker_attaches_runs_on_attach(self):
        # The master dispatches inside Attach: the worker must still take the build.
        s = self.sys
        self.start(config(builders={"b": (["w1"], ["echo ran on $BUILDYARD_WORKER"])}))
        bid = s.submit("b")
        self.assertEqual(s.build_prop(bid, "State"), "pending")
        s.start_worker("w1")
        self.assertEqual(s.wait_build(bid), (bid, "success"), s.read_log(bid))
        self.assertIn("ran on w1", s.read_log(bid))

    # --- detaching ---------------------------------------------------------

    def test_idle_worker_killed_is_detached_at_once(self):
        s = self.sys
        self.start(config())
        w = s.start_worker("w1")
        self.assertGreater(self.wprop("w1", "LastConnected"), 0)
        self.assertEqual(self.wprop("w1", "LastDisconnected"), 0)
        w.signal(signal.SIGKILL)
        s.wait_attached("w1", attached=False, timeout=2)
        self.assertEqual(self.wprop("w1", "State"), "offline")
        connected = self.wprop("w1", "LastConnected")
        disconnected = self.wprop("w1", "LastDisconnected")
        self.assertGreater(connected, 0)
        self.assertGreater(disconnected, connected)
        self.assertEqual(s.get(MASTER_PATH, MASTER1, "ConnectedWorkers"), 0)

    # --- PropertiesChanged ---------------------------------------------------

    def test_properties_changed_on_attach_and_pause(self):
        s = self.sys
        self.start(config())
        path = s.worker_path("w1")
        mon = SignalMonitor(s, f"type=signal,sender={MASTER},path={path},"
                               "interface=org.freedesktop.DBus.Properties,member=PropertiesChanged")

        def state_is(value):
            def match(p, args):
                return p == path and any(args[i] == "State" and args[i + 1] == value
                                         for i in range(len(args) - 1))
            return match

        s.start_worker("w1")
        mon.wait("PropertiesChanged", state_is("idle"))
        s.call(path, WORKER1, "Pause", "s", "")
        paused = mon.wait("PropertiesChanged", state_is("paused"))
        # Only what changed is named: Paused and State, not the 22 others.
        self.assertIn("Paused", paused[-1][1])
        for unchanged in ("MaxBuilds", "Properties", "Info", "Type", "PauseReason", "LastConnected"):
            self.assertNotIn(unchanged, paused[-1][1])
        s.workers["w1"].signal(signal.SIGKILL)
        mon.wait("PropertiesChanged", state_is("offline"))


if __name__ == "__main__":
    unittest.main()
