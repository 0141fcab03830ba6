"""The daemons check privileges themselves: on a bus whose policy lets
everyone call everything, an unprivileged uid still gets
org.buildyard.Error.AccessDenied from every method that changes something
(and from ReadLog), while root and the daemon's own uid get through."""

import os
import pwd

from harness import (BIN, LATENT, LATENT_PATH, MASTER, MASTER_PATH, NOBODY_UID, SystemTest, dbus_send, gate_step,
                     master_ini, open_gate, wait_gate_reached)
from test_latentd import START_A, LatentTest

MASTER1 = "org.buildyard.Master1"
WORKER1 = "org.buildyard.Worker1"
BUILD1 = "org.buildyard.Build1"
DENIED = "org.buildyard.Error.AccessDenied"
# Neither root, nor the master's uid, nor in group buildyard; a uid the bus
# can look up (dbus-daemon refuses uids without a passwd entry).
OTHER_UID = pwd.getpwnam("daemon").pw_uid

# Mandatory beats every other policy: the bus itself stops no call.
PERMISSIVE = ('<policy context="mandatory"><allow own="*"/><allow send_destination="*"/>'
              '<allow send_type="method_call"/></policy>')


def send(system, dest, path, method, *args, user=None):
    return dbus_send(system, path, method, *args, dest=dest, user=user)


class PermissiveBusTest(SystemTest):
    bus_policy = PERMISSIVE


class MasterChecksCallers(PermissiveBusTest):
    def test_unprivileged_callers_are_refused_by_the_master_itself(self):
        s = self.sys
        s.write_config(master_ini(["w1"], {"gated": (["w1"], [gate_step(s)])}))
        s.start_master()
        s.start_worker("w1")
        running = s.submit("gated")
        wait_gate_reached(s, running)
        w1 = s.worker_path("w1")
        build = s.build_path(running)
        calls = [
            (MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:gated", "dict:string:string:"),
            (MASTER_PATH, f"{MASTER1}.Reload"),
            (w1, f"{WORKER1}.Pause", "string:mine now"),
            (w1, f"{WORKER1}.Unpause"),
            (w1, f"{WORKER1}.Shutdown", "boolean:false"),
            (build, f"{BUILD1}.Cancel"),
            (build, f"{BUILD1}.ReadLog", "uint64:0", "uint64:4096"),
        ]
        before = s.call(MASTER_PATH, MASTER1, "ListBuilds", "t", 0)[0]
        for uid in (NOBODY_UID, OTHER_UID):
            for path, method, *args in calls:
                err, text = send(s, MASTER, path, method, *args, user=uid)
                self.assertEqual(err, DENIED, f"{method} as uid {uid}: {text}")
                self.assertIn("needs root, the daemon's own user, user buildyard or a member of group buildyard",
                              text)
        self.assertEqual(s.call(MASTER_PATH, MASTER1, "ListBuilds", "t", 0)[0], before)
        self.assertIs(s.worker_prop("w1", "Paused"), False)
        self.assertIs(s.worker_prop("w1", "Connected"), True)
        self.assertEqual(s.build_prop(running, "State"), "running")
        # Reading stays open to everyone.
        err, text = send(s, MASTER, MASTER_PATH, f"{MASTER1}.Describe", user=NOBODY_UID)
        self.assertIsNone(err, text)
        # Root gets through.
        err, text = send(s, MASTER, w1, f"{WORKER1}.Pause", "string:root may")
        self.assertIsNone(err, text)
        self.assertIs(s.worker_prop("w1", "Paused"), True)
        err, text = send(s, MASTER, build, f"{BUILD1}.ReadLog", "uint64:0", "uint64:4096")
        self.assertIsNone(err, text)
        open_gate(s, running)
        self.assertEqual(s.wait_build(running)[1], "success")

    def test_the_masters_own_uid_is_let_in(self):
        s = self.sys
        s.write_config(master_ini(["w1"], {"b": (["w1"], ["true"])}))
        os.chmod(os.path.join(s.dir, "etc"), 0o755)
        os.makedirs(s.state_dir)
        os.chown(s.state_dir, NOBODY_UID, NOBODY_UID)
        argv = [os.path.join(BIN, "buildyard-masterd"), "--config", s.config_path, "--state-directory", s.state_dir]
        s.master = s._spawn("master", argv, notify=True, user=NOBODY_UID)
        s.master.wait_notify("READY=1")
        err, text = send(s, MASTER, MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:b", "dict:string:string:",
                         user=NOBODY_UID)
        self.assertIsNone(err, text)
        err, text = send(s, MASTER, MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:b", "dict:string:string:",
                         user=OTHER_UID)
        self.assertEqual(err, DENIED, text)
        err, text = send(s, MASTER, MASTER_PATH, f"{MASTER1}.Reload")
        self.assertIsNone(err, text)
        self.assertEqual(s.get(MASTER_PATH, MASTER1, "PendingBuilds"), 1)


class LatentdChecksCallers(LatentTest):
    bus_policy = PERMISSIVE

    def test_unprivileged_callers_are_refused_by_latentd_itself(self):
        s = self.sys
        self.latentd()
        iface = "org.buildyard.Latent1"
        calls = [
            (f"{iface}.Start", *self.start_args("vm1", START_A)),
            (f"{iface}.Stop", "string:vm1", f"string:{START_A}"),
            (f"{iface}.RenewLease", f"string:{START_A}", "uint64:600000000"),
            (f"{iface}.StopAll",),
            (f"{iface}.Reap",),
            (f"{iface}.Reload",),
        ]
        for method, *args in calls:
            err, text = send(s, LATENT, LATENT_PATH, method, *args, user=NOBODY_UID)
            self.assertEqual(err, DENIED, f"{method}: {text}")
        self.assertEqual(self.call("ListInstances")[0], [])
        self.assertFalse(os.path.exists(self.overlay("vm1", START_A)))
        # Root starts a machine.
        err, text = send(s, LATENT, LATENT_PATH, *calls[0])
        self.assertIsNone(err, text)
        self.assertEqual(len(self.call("ListInstances")[0]), 1)
