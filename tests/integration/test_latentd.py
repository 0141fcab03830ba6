"""buildyard-latentd on a private bus with the real libvirt backend on
libvirt's test:///default driver and real qcow2 overlays (qemu-img):
Start/Stop/ListInstances, leases and InstanceGone, the reaper after kill -9,
deadlines, StopAll, Reload, the bus policy, and sd_notify."""

import json
import os
import signal
import sqlite3
import subprocess
import time

from harness import (BIN, LATENT, LATENT_PATH, NOBODY_UID, SignalMonitor, SystemTest, master_ini, process_gone,
                     start_latentd, wait_for)
from test_introspection import describe, documented

IFACE = "org.buildyard.Latent1"
MASTER_NAME = "itm"
START_A = "0123456789abcdef0123456789abcdef"
START_B = "fedcba9876543210fedcba9876543210"
START_C = "00112233445566778899aabbccddeeff"
TOKEN = "c" * 64
LONG_LEASE = 600_000_000

TEMPLATE = """<domain type='test'>
  <name>template</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><source file='/nonexistent.img'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>
"""


class LatentTest(SystemTest):
    """A bus, a config with latent workers on test:///default, and helpers."""

    def setUp(self):
        super().setUp()
        self.overlays = self.path("overlays")
        self.template = self.path("vm.xml")
        with open(self.template, "w") as f:
            f.write(TEMPLATE)
        self.base = self.path("base.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", self.base, "16M"], check=True, timeout=60)
        self.write_config()

    def write_config(self, master=MASTER_NAME, workers=("vm1", "vm2")):
        latent = ("type = latent\nbackend = libvirt\nmaster_address = 127.0.0.1:9989\n"
                  f"libvirt.uri = test:///default\nlibvirt.xml = {self.template}\n"
                  f"libvirt.base_image = {self.base}\nlibvirt.overlay_dir = {self.overlays}\n"
                  "libvirt.shutdown_timeout = 0\n")
        self.sys.write_config(master_ini(dict.fromkeys(workers, latent), name=master))

    def latentd(self, settings=None, env=None, **kwargs):
        """latentd with [latentd] `settings` (lease_check_interval = 0.1
        unless they say otherwise) and `env` on top of the system's."""
        return start_latentd(self.sys, env, settings={"lease_check_interval": "0.1", **(settings or {})}, **kwargs)

    def overlay(self, worker, start, master=MASTER_NAME):
        return os.path.join(self.overlays, master, f"{worker}.{start}.qcow2")

    # --- calls ---------------------------------------------------------

    def busctl(self, *args, user=None, check=True):
        return self.sys.run(["busctl", "--system", "--json=short", *args], user=user, check=check)

    def call(self, method, sig="", *args, user=None):
        r = self.busctl("call", LATENT, LATENT_PATH, IFACE, method, *([sig] if sig else []), *map(str, args),
                        user=user)
        return json.loads(r.stdout)["data"] if r.stdout.strip() else []

    def prop(self, name):
        return json.loads(self.busctl("get-property", LATENT, LATENT_PATH, IFACE, name).stdout)["data"]

    def error(self, method, *args, user=None):
        """Calls Latent1.method with dbus-send (which prints error names);
        returns the error name, or None on success."""
        r = self.sys.run(["dbus-send", "--system", "--print-reply", f"--dest={LATENT}", LATENT_PATH,
                          f"{IFACE}.{method}", *args], check=False, user=user)
        if r.returncode == 0:
            return None
        first = r.stderr.strip().split(":", 1)[0]
        return first[len("Error "):] if first.startswith("Error ") else r.stderr.strip()

    def start(self, worker, start, lease=LONG_LEASE):
        return self.call("Start", "ssssst", worker, start, "127.0.0.1:9989", TOKEN, "", lease)[0]

    def start_args(self, worker, start, lease=LONG_LEASE, token=TOKEN):
        return [f"string:{worker}", f"string:{start}", "string:127.0.0.1:9989", f"string:{token}", "string:",
                f"uint64:{lease}"]

    def call_in_background(self, method, *args):
        """dbus-send running until its answer comes; .wait() then .log()."""
        return self.sys._spawn(f"dbus-send-{method}-{len(self.sys.procs)}",
                               ["dbus-send", "--system", "--print-reply", "--reply-timeout=120000",
                                f"--dest={LATENT}", LATENT_PATH, f"{IFACE}.{method}", *args])

    def instances(self):
        """{start: (worker, backend, state, instance, created, lease_expires, running_since)}"""
        return {row[1]: (row[0], *row[2:]) for row in self.call("ListInstances")[0]}

    def wait_state(self, start, state, timeout=20):
        wait_for(lambda: self.instances().get(start, (None, None, None))[2] == state, timeout,
                 f"start {start} to be {state}")

    def db_rows(self, state_dir=None):
        db = os.path.join(state_dir or self.path("latent-state"), "latent.db")
        with sqlite3.connect(db) as c:
            return {r[0]: r[1:] for r in c.execute("SELECT start, worker, phase, instance FROM starts")}

    def sync(self, monitor):
        """Waits until the monitor has seen everything sent before this call."""
        self.sync_count = getattr(self, "sync_count", 0) + 1
        member = f"Sync{self.sync_count}"
        self.sys.run(["busctl", "--system", "emit", "/org/buildyard/Test", SignalMonitor.SENTINEL_IFACE, member])
        monitor.wait(member)


class StartStop(LatentTest):
    def test_start_list_and_stop(self):
        self.latentd()
        self.assertEqual(self.start("vm1", START_A), f"buildyard-{MASTER_NAME}-vm1")
        rows = self.instances()
        self.assertEqual(list(rows), [START_A])
        worker, backend, state, instance, created, lease_expires, running_since = rows[START_A]
        self.assertEqual((worker, backend, state, instance), ("vm1", "libvirt", "running", "buildyard-itm-vm1"))
        self.assertGreater(created, 0)
        self.assertGreaterEqual(running_since, created)
        self.assertGreaterEqual(lease_expires, running_since + LONG_LEASE)
        self.assertTrue(os.path.exists(self.overlay("vm1", START_A)))
        self.assertEqual(self.prop("Instances"), 1)
        self.assertEqual(self.prop("MasterName"), MASTER_NAME)
        self.assertEqual(self.db_rows(), {START_A: ("vm1", "running", "buildyard-itm-vm1")})

        # Never two instances of one worker; bad requests are refused.
        self.assertEqual(self.error("Start", *self.start_args("vm1", START_B)), "org.buildyard.Error.Busy")
        self.assertEqual(self.error("Start", *self.start_args("vm2", START_A)), "org.buildyard.Error.Busy")
        self.assertEqual(self.error("Start", *self.start_args("ghost", START_B)), "org.buildyard.Error.NoSuchWorker")
        for bad in ("", "0123", START_B.upper(), START_B + "0", "../../etc/passwd/abcdef0123456789ab"):
            self.assertEqual(self.error("Start", *self.start_args("vm2", bad)), "org.buildyard.Error.InvalidArgument",
                             bad)
        self.assertEqual(self.error("Start", *self.start_args("vm2", START_B, token="")),
                         "org.buildyard.Error.InvalidArgument")
        self.assertEqual(self.error("Start", *self.start_args("vm2", START_B, lease=0)),
                         "org.buildyard.Error.InvalidArgument")
        self.assertEqual(list(self.instances()), [START_A])

        self.assertEqual(self.error("Stop", "string:vm2", f"string:{START_A}"), "org.buildyard.Error.InvalidArgument")
        self.assertIsNone(self.error("Stop", "string:vm1", f"string:{START_A}"))
        self.assertEqual(self.instances(), {})
        self.assertFalse(os.path.exists(self.overlay("vm1", START_A)))
        self.assertEqual(self.prop("Instances"), 0)
        self.assertEqual(self.db_rows(), {})
        # Stopping what is not live succeeds.
        self.assertIsNone(self.error("Stop", "string:vm1", f"string:{START_A}"))
        self.assertIsNone(self.error("Stop", "string:vm1", f"string:{START_B}"))
        # And the worker can start again.
        self.assertEqual(self.start("vm1", START_B), "buildyard-itm-vm1")
        self.assertEqual(self.prop("ReapedLeaks"), 0)

    def test_stop_all(self):
        self.latentd()
        monitor = SignalMonitor(self.sys, f"type=signal,interface={IFACE}")
        self.start("vm1", START_A)
        self.start("vm2", START_B)
        self.assertEqual(self.prop("Instances"), 2)
        self.assertIsNone(self.error("StopAll"))
        self.assertEqual(self.instances(), {})
        self.assertFalse(os.path.exists(self.overlay("vm1", START_A)))
        self.assertFalse(os.path.exists(self.overlay("vm2", START_B)))
        self.sync(monitor)
        self.assertEqual(monitor.signals("InstanceGone"), [], "a stop is no InstanceGone")
        self.assertIsNone(self.error("StopAll"), "nothing to stop")

    def test_stop_while_creating(self):
        # The creation takes 2 s more to report back; Stop waits for it.
        self.latentd(env={"BUILDYARD_LATENT_TEST_CREATE_DELAY": "2"})
        start = self.call_in_background("Start", *self.start_args("vm1", START_A))
        self.wait_state(START_A, "creating")
        stop = self.call_in_background("Stop", "string:vm1", f"string:{START_A}")
        self.assertNotEqual(start.wait(timeout=60), 0)
        self.assertIn("org.buildyard.Error.NoSuchInstance", start.log())
        self.assertEqual(stop.wait(timeout=60), 0, stop.log())
        self.assertEqual(self.instances(), {})
        self.assertFalse(os.path.exists(self.overlay("vm1", START_A)))
        self.assertEqual(self.db_rows(), {})


class Leases(LatentTest):
    def test_lease_expiry_and_renewal(self):
        latentd = self.latentd()
        monitor = SignalMonitor(self.sys, f"type=signal,interface={IFACE}")
        self.start("vm1", START_A, lease=1_000_000)
        self.start("vm2", START_B, lease=2_000_000)
        first_expiry = self.instances()[START_B][5]
        # Renew vm2 ten times per lease, and let vm1's lease run out.
        renewals = 0
        deadline = time.monotonic() + 30
        while not monitor.signals("InstanceGone") and time.monotonic() < deadline:
            self.call("RenewLease", "st", START_B, 2_000_000)
            renewals += 1
            time.sleep(0.2)
        gone = monitor.wait("InstanceGone")
        self.assertEqual(gone[0][1], ["vm1", START_A, "lease expired", ""])
        self.assertFalse(os.path.exists(self.overlay("vm1", START_A)), "removed before the signal")
        self.assertNotIn(START_A, self.instances())
        # vm2 lives on for as long as it is renewed: two more lease lengths.
        until = time.monotonic() + 4
        while time.monotonic() < until:
            self.call("RenewLease", "st", START_B, 2_000_000)
            time.sleep(0.2)
        self.sync(monitor)
        self.assertEqual(len(monitor.signals("InstanceGone")), 1, monitor.signals("InstanceGone"))
        self.assertEqual(self.instances()[START_B][2], "running")
        self.assertGreater(self.instances()[START_B][5], first_expiry)
        self.assertTrue(os.path.exists(self.overlay("vm2", START_B)))
        self.assertIn(f"the lease of worker vm1 (start {START_A}) expired", latentd.log())

        self.assertEqual(self.error("RenewLease", f"string:{START_A}", "uint64:1000000"),
                         "org.buildyard.Error.NoSuchInstance")
        self.assertEqual(self.error("RenewLease", f"string:{START_C}", "uint64:1000000"),
                         "org.buildyard.Error.NoSuchInstance")
        self.assertEqual(self.error("RenewLease", f"string:{START_B}", "uint64:0"),
                         "org.buildyard.Error.InvalidArgument")


class Reaper(LatentTest):
    def foreign_files(self):
        """Things the reaper must never touch: another master's overlay and
        untagged files in this master's directory."""
        files = [self.overlay("vm1", START_C, master="other"), os.path.join(self.overlays, MASTER_NAME, "notes.txt"),
                 os.path.join(self.overlays, MASTER_NAME, "vm1.qcow2"),
                 os.path.join(self.overlays, MASTER_NAME, f"vm1.{START_C}.img")]
        for f in files:
            os.makedirs(os.path.dirname(f), exist_ok=True)
            open(f, "w").close()
        return files

    def test_kill_9_during_a_start_leaves_a_leak_that_is_reaped(self):
        foreign = self.foreign_files()
        latentd = self.latentd(env={"BUILDYARD_LATENT_TEST_CREATE_DELAY": "60"})
        start = self.call_in_background("Start", *self.start_args("vm1", START_A))
        self.wait_state(START_A, "creating")
        wait_for(lambda: os.path.exists(self.overlay("vm1", START_A)), 20, "the overlay")
        latentd.signal(signal.SIGKILL)
        wait_for(lambda: process_gone(latentd.pid), 10, "latentd to die")
        self.assertNotEqual(start.wait(timeout=30), 0)
        self.assertEqual(self.db_rows(), {START_A: ("vm1", "creating", "")})
        self.assertTrue(os.path.exists(self.overlay("vm1", START_A)))

        latentd = self.latentd(name="latentd-2")
        # Reaped before READY=1.
        self.assertFalse(os.path.exists(self.overlay("vm1", START_A)))
        self.assertEqual(self.prop("ReapedLeaks"), 1)
        self.assertGreater(self.prop("LastReapedAt"), 0)
        self.assertEqual(self.db_rows(), {})
        self.assertEqual(self.instances(), {})
        self.assertIn(f"warning: reaped leaked overlay {self.overlay('vm1', START_A)} of worker vm1 (start {START_A})",
                      latentd.log())
        for f in foreign:
            self.assertTrue(os.path.exists(f), f)
        # The worker is free again.
        self.assertEqual(self.start("vm1", START_B), "buildyard-itm-vm1")

    def test_reap_now_and_every_interval(self):
        foreign = self.foreign_files()
        self.latentd({"reap_interval": "0.3"})
        self.start("vm1", START_A)
        leak = self.overlay("vm2", START_B)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", leak, "1M"], check=True, timeout=60)
        wait_for(lambda: not os.path.exists(leak), 20, "the periodic reaper")
        self.assertEqual(self.prop("ReapedLeaks"), 1)
        self.assertTrue(os.path.exists(self.overlay("vm1", START_A)), "a live start's overlay stays")
        for f in foreign:
            self.assertTrue(os.path.exists(f), f)

    def test_reap_method(self):
        self.latentd()
        self.assertEqual(self.prop("LastReapedAt"), 0)
        self.start("vm1", START_A)
        leak = self.overlay("vm2", START_B)
        open(leak, "w").close()
        self.assertEqual(self.call("Reap"), [1])
        self.assertFalse(os.path.exists(leak))
        self.assertEqual(self.call("Reap"), [0])
        self.assertEqual(self.prop("ReapedLeaks"), 1)
        self.assertGreater(self.prop("LastReapedAt"), 0)
        self.assertEqual(list(self.instances()), [START_A])


class Deadlines(LatentTest):
    def test_a_create_past_its_deadline_times_out_and_is_reaped(self):
        latentd = self.latentd({"create_timeout": "2"}, env={"BUILDYARD_LATENT_TEST_CREATE_DELAY": "60"})
        start = self.call_in_background("Start", *self.start_args("vm1", START_A))
        # The loop answers while the creation hangs.
        self.wait_state(START_A, "creating")
        self.assertEqual(self.prop("Instances"), 1)
        self.assertNotEqual(start.wait(timeout=60), 0)
        self.assertIn("org.buildyard.Error.Timeout", start.log())
        # The late result is reaped: the domain and the overlay it made.
        wait_for(lambda: self.prop("ReapedLeaks") == 2, 20, "the late creation to be reaped")
        self.assertFalse(os.path.exists(self.overlay("vm1", START_A)))
        self.assertEqual(self.instances(), {})
        self.assertEqual(self.db_rows(), {})
        log = latentd.log()
        self.assertIn(f"answered after its deadline", log)
        self.assertIn(f"reaped leaked domain buildyard-itm-vm1 of worker vm1 (start {START_A})", log)


class Health(LatentTest):
    def test_an_instance_found_gone_is_removed_and_reported(self):
        # test:///default keeps domains only while latentd's connection
        # lives: after a restart, the adopted running start's domain is
        # gone, which the first health check finds.
        fast = {"health_interval": "0.2"}
        latentd = self.latentd(fast)
        self.start("vm1", START_A)
        latentd.stop()
        self.assertEqual(latentd.wait(), 0)
        self.assertEqual(self.db_rows(), {START_A: ("vm1", "running", "buildyard-itm-vm1")},
                         "a running instance outlives latentd")
        monitor = SignalMonitor(self.sys, f"type=signal,interface={IFACE}")
        self.latentd(fast, name="latentd-2")
        gone = monitor.wait("InstanceGone")
        worker, start, reason, log_tail = gone[0][1]
        self.assertEqual((worker, start), ("vm1", START_A))
        self.assertTrue(reason)
        self.assertNotEqual(reason, "lease expired")
        self.assertFalse(os.path.exists(self.overlay("vm1", START_A)))
        self.assertEqual(self.instances(), {})
        self.assertEqual(self.prop("ReapedLeaks"), 0, "not a leak: its own start's removal")


class Reload(LatentTest):
    def test_a_bad_config_keeps_the_old_one(self):
        latentd = self.latentd()
        self.start("vm1", START_A)
        with open(self.sys.config_path, "a") as f:
            f.write("[worker vm1]\nbogus = 1\n")
        self.assertEqual(self.error("Reload"), "org.buildyard.Error.ConfigInvalid")
        self.assertIn("configuration not reloaded; the old one stays in force", latentd.log())
        self.assertEqual(self.prop("MasterName"), MASTER_NAME)
        self.assertEqual(self.start("vm2", START_B), "buildyard-itm-vm2")

        # A good config, by SIGHUP: a new master name and worker.
        self.write_config(master="itm2", workers=("vm1", "vm3"))
        latentd.signal(signal.SIGHUP)
        wait_for(lambda: self.prop("MasterName") == "itm2", 10, "the new master name")
        self.assertEqual(self.start("vm3", START_C), "buildyard-itm2-vm3")
        self.assertTrue(os.path.exists(self.overlay("vm3", START_C, master="itm2")))
        # vm2 left the config; its instance is still stopped with its own settings and tag.
        self.assertIsNone(self.error("Stop", "string:vm2", f"string:{START_B}"))
        self.assertFalse(os.path.exists(self.overlay("vm2", START_B)))
        self.assertEqual(self.error("Start", *self.start_args("vm2", START_B)), "org.buildyard.Error.NoSuchWorker")
        self.assertIsNone(self.error("Reload"))


class Policy(LatentTest):
    def test_others_may_read_but_not_act(self):
        self.latentd()
        self.start("vm1", START_A)
        denied = "org.freedesktop.DBus.Error.AccessDenied"
        self.assertEqual(self.error("Start", *self.start_args("vm2", START_B), user=NOBODY_UID), denied)
        self.assertEqual(self.error("Stop", "string:vm1", f"string:{START_A}", user=NOBODY_UID), denied)
        self.assertEqual(self.error("RenewLease", f"string:{START_A}", "uint64:1", user=NOBODY_UID), denied)
        self.assertEqual(self.error("StopAll", user=NOBODY_UID), denied)
        self.assertEqual(self.error("Reap", user=NOBODY_UID), denied)
        self.assertEqual(self.error("Reload", user=NOBODY_UID), denied)
        self.assertIsNone(self.error("ListInstances", user=NOBODY_UID))
        rows = self.call("ListInstances", user=NOBODY_UID)[0]
        self.assertEqual([r[1] for r in rows], [START_A])
        r = self.busctl("get-property", LATENT, LATENT_PATH, IFACE, "Instances", user=NOBODY_UID)
        self.assertEqual(json.loads(r.stdout)["data"], 1)
        r = self.busctl("introspect", LATENT, LATENT_PATH, user=NOBODY_UID)
        self.assertIn("InstanceGone", r.stdout)
        self.assertEqual(list(self.instances()), [START_A], "still running")


class Interface(LatentTest):
    def test_the_live_object_is_the_documented_interface(self):
        self.latentd()
        live = describe(self.sys.run(["busctl", "--system", "introspect", "--xml-interface", LATENT,
                                      LATENT_PATH]).stdout)
        self.assertEqual(list(live), [IFACE])
        self.assertEqual(live[IFACE], documented(IFACE))
        self.assertEqual(self.prop("Version"), subprocess.run(
            [os.path.join(BIN, "buildyard-latentd"), "--version"], capture_output=True, text=True,
            timeout=30).stdout.split()[1])


class Daemon(LatentTest):
    def test_ready_status_and_watchdog(self):
        latentd = self.latentd(env={"WATCHDOG_USEC": "200000"})
        ready = next(m for m in latentd.messages if "READY=1" in m)
        self.assertIn("STATUS=0 instances, 0 leaks reaped", ready)
        self.start("vm1", START_A)
        latentd.wait_notify("STATUS=1 instances, 0 leaks reaped")
        wait_for(lambda: latentd.notified("WATCHDOG=1") >= 3, 5, "3 WATCHDOG=1 from latentd")
        first = latentd.notified("WATCHDOG=1")
        wait_for(lambda: latentd.notified("WATCHDOG=1") >= first + 3, 5, "more WATCHDOG=1")
        # They come from the event loop, so a loop that hangs stops them (and
        # systemd would restart latentd). Hang it: hold the state database
        # locked and ask for a start, whose row is written inside the loop
        # (waiting up to SQLite's busy timeout of 5 s for the lock).
        db = sqlite3.connect(os.path.join(self.path("latent-state"), "latent.db"), isolation_level=None, timeout=10)
        try:
            db.execute("BEGIN EXCLUSIVE")
            start = self.call_in_background("Start", *self.start_args("vm2", START_B))
            self.addCleanup(start.stop)
            time.sleep(0.5)  # the call reaches latentd, whose loop then waits on the lock
            hung = latentd.notified("WATCHDOG=1")
            time.sleep(1.5)  # 7 watchdog periods
            self.assertEqual(latentd.notified("WATCHDOG=1"), hung, "WATCHDOG=1 while the loop was stuck")
        finally:
            db.execute("ROLLBACK")
            db.close()
        self.assertEqual(start.wait(timeout=30), 0, start.log())
        wait_for(lambda: latentd.notified("WATCHDOG=1") >= hung + 3, 3, "WATCHDOG=1 again once the loop runs")
        latentd.signal(signal.SIGHUP)
        latentd.wait_notify("RELOADING=1")
        latentd.wait_notify("READY=1")
        latentd.stop()
        self.assertEqual(latentd.wait(), 0)
        self.assertTrue(any("STOPPING=1" in m for m in latentd.messages))

    def test_one_latentd_per_state_directory_and_bus(self):
        first = self.latentd()
        self.start("vm1", START_A)
        second = self.latentd(wait_ready=False, name="latentd-same-dir")
        self.assertEqual(second.wait(timeout=20), 1)
        self.assertIn("another buildyard-latentd uses this state directory", second.log())
        # Another state directory: refused by the bus name before it looks
        # for leaks, so the first one's instance is untouched.
        third = self.latentd(wait_ready=False, name="latentd-other-dir", state_dir=self.path("other-state"))
        self.assertEqual(third.wait(timeout=20), 1)
        self.assertIn("is another buildyard-latentd running?", third.log())
        self.assertTrue(os.path.exists(self.overlay("vm1", START_A)))
        self.assertEqual(list(self.instances()), [START_A])
        self.assertTrue(first.alive())

    def test_check_config_and_a_bad_config(self):
        run = lambda: subprocess.run([os.path.join(BIN, "buildyard-latentd"), "--check-config", "--config",
                                      self.sys.config_path], capture_output=True, text=True, timeout=30)
        r = run()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 latent workers", r.stdout)
        with open(self.sys.config_path, "a") as f:
            f.write("[worker vm1]\nlibvirt.colour = red\n")
        r = run()
        self.assertEqual(r.returncode, 1)
        self.assertIn("libvirt.colour", r.stderr)
        latentd = self.latentd(wait_ready=False)
        self.assertEqual(latentd.wait(timeout=20), 1)
        self.assertIn("libvirt.colour", latentd.log())
        self.assertFalse(any("READY=1" in m for m in latentd.messages))

    def test_help_and_version(self):
        r = subprocess.run([os.path.join(BIN, "buildyard-latentd"), "--help"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("Usage: buildyard-latentd"), r.stdout)
        self.assertIn("--state-directory", r.stdout)
        r = subprocess.run([os.path.join(BIN, "buildyard-latentd"), "--version"], capture_output=True, text=True,
                           timeout=30)
        self.assertRegex(r.stdout, r"^buildyard-latentd \d+\.\d+\.\d+\n$")


if __name__ == "__main__":
    import unittest
    unittest.main()
