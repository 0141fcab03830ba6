"""Reloading the master's config (SIGHUP and Master1.Reload()): new workers
and builders, removed workers, changed settings, bad configs, and nothing
attached or running is dropped."""

import os
import signal
import unittest

from harness import (MASTER_PATH, SystemTest, bus_error, gate_step, open_gate, wait_for,
                     wait_gate_reached)

MASTER1 = "org.buildyard.Master1"
WORKER1 = "org.buildyard.Worker1"


def worker_section(name, extra=""):
    return f"[worker {name}]\ntype = local\n{extra}\n"


def builder_section(name, workers, steps):
    text = f"[builder {name}]\nworkers = {', '.join(workers)}\n"
    text += "".join(f"step.{i} = {step}\n" for i, step in enumerate(steps, 1))
    return text + "\n"


MASTER_SECTION = "[master]\nname = it\nlisten =\n\n"


class ReloadTest(SystemTest):

    def start(self, text):
        self.sys.write_config(text)
        self.sys.start_master()

    def wprop(self, name, prop):
        return self.sys.worker_prop(name, prop)

    def reload(self, how):
        """Reloads through the bus ("call") or SIGHUP ("sighup"); waits until it is done."""
        if how == "call":
            self.sys.call(MASTER_PATH, MASTER1, "Reload")
            return
        log = self.sys.master.log
        before = log().count("configuration reloaded")
        self.sys.master.signal(signal.SIGHUP)
        wait_for(lambda: log().count("configuration reloaded") > before, 10, "the reload after SIGHUP")

    def worker_names(self):
        return {name: state for name, state, _ in self.sys.call(MASTER_PATH, MASTER1, "ListWorkers")[0]}

    # --- new workers and builders -------------------------------------------

    def check_new_worker_and_builder(self, how):
        s = self.sys
        self.start(MASTER_SECTION + worker_section("w1") + builder_section("b", ["w1"], ["true"]))
        s.start_worker("w1")
        self.assertEqual(bus_error(s, MASTER_PATH, "org.buildyard.Master1.GetWorker", "string:w2"),
                         "org.buildyard.Error.NoSuchWorker")
        self.assertEqual(bus_error(s, MASTER_PATH, "org.buildyard.Master1.GetBuilder", "string:nb"),
                         "org.buildyard.Error.NoSuchBuilder")

        s.write_config(worker_section("w2", "property.side = new") +
                       builder_section("nb", ["w2"], ["echo nb on $BUILDYARD_WORKER side=$BUILDYARD_PROP_side"]),
                       name="50-new.ini")
        self.reload(how)
        self.assertEqual(self.worker_names(), {"w1": "idle", "w2": "offline"})
        self.assertEqual(s.worker_path("w2"), "/org/buildyard/Master1/worker/w2")
        builder = s.call(MASTER_PATH, MASTER1, "GetBuilder", "s", "nb")[0]
        self.assertEqual(s.get(builder, "org.buildyard.Builder1", "Workers"), ["w2"])

        s.start_worker("w2")
        self.assertEqual(self.wprop("w2", "State"), "idle")
        bid = s.submit("nb")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertEqual(s.build_prop(bid, "Worker"), "w2")
        self.assertIn("nb on w2 side=new", s.read_log(bid))
        self.assertIs(self.wprop("w1", "Connected"), True)

    def test_new_worker_and_builder_appear_on_reload_call(self):
        self.check_new_worker_and_builder("call")

    def test_new_worker_and_builder_appear_on_sighup(self):
        self.check_new_worker_and_builder("sighup")

    # --- a removed worker ---------------------------------------------------

    def test_removed_worker_finishes_its_build_then_leaves(self):
        s = self.sys
        gate = gate_step(s)
        self.start(MASTER_SECTION + worker_section("w1") + worker_section("w2") +
                   builder_section("b", ["w1", "w2"], [gate]))
        w1 = s.start_worker("w1")
        s.start_worker("w2")
        a = s.submit("b")  # equal load: the name decides, so w1
        wait_gate_reached(s, a)
        self.assertEqual(s.build_prop(a, "Worker"), "w1")
        # w2 paused: a new build has nowhere to go but the removed w1, if anywhere.
        s.call(s.worker_path("w2"), WORKER1, "Pause", "s", "hold")

        s.write_config(MASTER_SECTION + worker_section("w2") + builder_section("b", ["w2"], [gate]))
        self.reload("call")
        self.assertIn("worker w1 was removed from the configuration", s.master.log())
        self.assertIs(self.wprop("w1", "Connected"), True)
        self.assertIs(self.wprop("w1", "Configured"), False)
        self.assertTrue(w1.alive())

        b = s.submit("b")
        self.assertEqual(s.build_prop(b, "State"), "pending")
        self.assertEqual(self.wprop("w1", "RunningBuilds"), 1)
        self.assertEqual(s.build_prop(a, "State"), "running")

        open_gate(s, a)
        self.assertEqual(s.wait_build(a), (a, "success"))
        # Status 3, not 0: systemd shows the removal (buildyard-workerd(8)).
        self.assertEqual(w1.wait(timeout=10), 3, w1.log())
        self.assertIn("removed from the master's configuration", w1.log())
        self.assertEqual(bus_error(s, MASTER_PATH, "org.buildyard.Master1.GetWorker", "string:w1"),
                         "org.buildyard.Error.NoSuchWorker")
        self.assertEqual(self.worker_names(), {"w2": "paused"})
        self.assertEqual(s.build_prop(b, "State"), "pending")

        s.call(s.worker_path("w2"), WORKER1, "Unpause")
        wait_gate_reached(s, b)
        self.assertEqual(s.build_prop(b, "Worker"), "w2")
        open_gate(s, b)
        self.assertEqual(s.wait_build(b), (b, "success"))

    # --- changed settings ---------------------------------------------------

    def test_changed_max_builds_applies_to_the_next_dispatch(self):
        s = self.sys
        gate = gate_step(s)
        conf = MASTER_SECTION + worker_section("w1", "max_builds = {}") + builder_section("b", ["w1"], [gate])
        self.start(conf.format(1))
        s.start_worker("w1")
        a = s.submit("b")
        b = s.submit("b")
        wait_gate_reached(s, a)
        self.assertEqual(self.wprop("w1", "MaxBuilds"), 1)
        self.assertEqual(self.wprop("w1", "RunningBuilds"), 1)
        self.assertEqual(s.build_prop(b, "State"), "pending")

        s.write_config(conf.format(2))
        self.reload("call")
        self.assertEqual(self.wprop("w1", "MaxBuilds"), 2)
        wait_for(lambda: self.wprop("w1", "RunningBuilds") == 2, 10, "two builds running on w1")
        wait_gate_reached(s, b)
        self.assertEqual(s.build_prop(a, "State"), "running")
        open_gate(s, a)
        open_gate(s, b)
        self.assertEqual(s.wait_build(a), (a, "success"))
        self.assertEqual(s.wait_build(b), (b, "success"))

    def test_changed_property_applies_to_the_next_build(self):
        s = self.sys
        steps = ["echo before=$BUILDYARD_PROP_color", gate_step(s), "echo after=$BUILDYARD_PROP_color"]
        conf = MASTER_SECTION + worker_section("w1", "property.color = {}") + builder_section("b", ["w1"], steps)
        self.start(conf.format("red"))
        s.start_worker("w1")
        a = s.submit("b")
        wait_gate_reached(s, a)
        self.assertIn("before=red", s.read_log(a))

        s.write_config(conf.format("blue"))
        self.reload("sighup")
        self.assertEqual(self.wprop("w1", "Properties"), {"color": "blue"})
        b = s.submit("b", color="green")  # the worker's property wins
        wait_gate_reached(s, b)
        self.assertIn("before=blue", s.read_log(b))
        self.assertEqual(s.build_prop(b, "Properties").get("color"), "blue")

        open_gate(s, a)
        open_gate(s, b)
        self.assertEqual(s.wait_build(a), (a, "success"))
        self.assertEqual(s.wait_build(b), (b, "success"))
        self.assertIn("after=red", s.read_log(a))
        self.assertEqual(s.build_prop(a, "Properties").get("color"), "red")
        self.assertIn("after=blue", s.read_log(b))

    # --- a bad config ---------------------------------------------------------

    def write_bad_config(self, name=None):
        """A config with a new worker w9 and a bad max_builds; returns (path, line of the bad key)."""
        text = (worker_section("w9") + "[worker w1]\ntype = local\nmax_builds = lots\n\n" +
                builder_section("b", ["w1"], ["echo still here"]))
        if name is None:
            text = MASTER_SECTION + text
        path = self.sys.write_config(text, name=name)
        line = text.splitlines().index("max_builds = lots") + 1
        return path, line

    def check_old_config_in_force(self):
        s = self.sys
        self.assertEqual(bus_error(s, MASTER_PATH, "org.buildyard.Master1.GetWorker", "string:w9"),
                         "org.buildyard.Error.NoSuchWorker")
        self.assertEqual(self.worker_names(), {"w1": "idle"})
        self.assertIs(self.wprop("w1", "Connected"), True)
        self.assertEqual(self.wprop("w1", "MaxBuilds"), 0)
        bid = s.submit("b")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertIn("old config", s.read_log(bid))

    def start_good(self):
        self.start(MASTER_SECTION + worker_section("w1") + builder_section("b", ["w1"], ["echo old config"]))
        self.sys.start_worker("w1")

    def test_bad_config_on_reload_call_is_returned_and_the_old_one_stays(self):
        s = self.sys
        self.start_good()
        path, line = self.write_bad_config()
        self.assertEqual(bus_error(s, MASTER_PATH, "org.buildyard.Master1.Reload"),
                         "org.buildyard.Error.ConfigInvalid")
        r = s.busctl("call", "org.buildyard.Master1", MASTER_PATH, MASTER1, "Reload", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{path}:{line}:", r.stderr)
        self.assertIn("lots", r.stderr)
        self.assertIn("configuration not reloaded", s.master.log())
        self.assertIn(f"{path}:{line}:", s.master.log())
        self.check_old_config_in_force()

    def test_bad_config_on_sighup_is_logged_and_the_old_one_stays(self):
        s = self.sys
        self.start_good()
        path, line = self.write_bad_config(name="90-bad.ini")
        s.master.signal(signal.SIGHUP)
        wait_for(lambda: f"{path}:{line}:" in s.master.log(), 10, "the config error in the master's log")
        self.assertIn("configuration not reloaded", s.master.log())
        self.assertTrue(s.master.alive())
        self.check_old_config_in_force()

        # Fixed, it loads.
        os.unlink(path)
        self.reload("sighup")
        self.check_old_config_in_force()

    # --- nothing is dropped -----------------------------------------------

    def test_reload_keeps_attached_workers_and_running_builds(self):
        s = self.sys
        gate = gate_step(s)
        self.start(MASTER_SECTION + worker_section("w1") + builder_section("b", ["w1"], [gate]))
        w = s.start_worker("w1")
        connected_at = self.wprop("w1", "LastConnected")
        a = s.submit("b")
        wait_gate_reached(s, a)

        self.reload("call")
        s.write_config(worker_section("w2") + builder_section("other", ["w2"], ["true"]), name="50-more.ini")
        self.reload("sighup")
        self.reload("call")

        self.assertTrue(w.alive())
        self.assertIs(self.wprop("w1", "Connected"), True)
        self.assertEqual(self.wprop("w1", "LastConnected"), connected_at)
        self.assertEqual(self.wprop("w1", "LastDisconnected"), 0)
        self.assertEqual(self.wprop("w1", "RunningBuilds"), 1)
        self.assertEqual(s.build_prop(a, "State"), "running")
        self.assertEqual(s.get(MASTER_PATH, MASTER1, "RunningBuilds"), 1)

        open_gate(s, a)
        self.assertEqual(s.wait_build(a), (a, "success"))
        self.assertEqual(s.build_prop(a, "RetriedAs"), 0)
        self.assertNotIn("detached", s.master.log())
        self.assertEqual(w.log().count("attached to"), 1, w.log())


if __name__ == "__main__":
    unittest.main()
