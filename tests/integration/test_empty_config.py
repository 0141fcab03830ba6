"""An empty or half-written master.ini does not stop the fleet: the master
refuses it at start and on reload (keeping the old one), and a worker that a
reload did remove exits with a status systemd shows."""

import os
import signal
import unittest

from harness import BIN, MASTER_PATH, SystemTest, bus_error, master_ini, wait_for

MASTER1 = "org.buildyard.Master1"

GOOD = master_ini(["w1", "w2"], {"b": (["w1", "w2"], ["true"])})

HALF_WRITTEN = [
    ("", "no [master] section"),
    ("; master.ini, being rewritten\n", "no [master] section"),
    ("[worker w1]\ntype = local\n", "no [master] section"),
    ("[master]\nlisten =\n", "no [worker NAME] section"),
]


class EmptyConfig(SystemTest):
    def check_config(self):
        return self.sys.run([os.path.join(BIN, "buildyard-masterd"), "--check-config", "--config",
                             self.sys.config_path], check=False)

    def test_master_refuses_to_start_on_an_empty_or_half_config(self):
        for text, error in HALF_WRITTEN:
            with self.subTest(text=text):
                self.sys.write_config(text)
                r = self.check_config()
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn(f"{self.sys.config_path}: {error}", r.stderr)
                master = self.sys.start_master(wait_ready=False)
                self.assertEqual(master.wait(timeout=20), 1)
                self.assertIn(f"{self.sys.config_path}: {error}", master.log())
                self.assertIn("STATUS=failed to start", master.wait_notify("STATUS="))

    def test_reload_keeps_the_old_config_and_every_worker(self):
        self.sys.write_config(GOOD)
        master = self.sys.start_master()
        workers = [self.sys.start_worker(w) for w in ("w1", "w2")]
        for text, error in HALF_WRITTEN:
            with self.subTest(text=text):
                self.sys.write_config(text)
                r = self.sys.busctl("call", MASTER1, MASTER_PATH, MASTER1, "Reload", check=False)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(bus_error(self.sys, MASTER_PATH, f"{MASTER1}.Reload"),
                                 "org.buildyard.Error.ConfigInvalid")
                self.assertIn(f"{self.sys.config_path}: {error}", r.stderr)
                master.signal(signal.SIGHUP)
                master.wait_notify("READY=1")
        for name, w in zip(("w1", "w2"), workers):
            self.assertTrue(w.alive(), w.log())
            self.assertIs(self.sys.worker_prop(name, "Connected"), True)
            self.assertIs(self.sys.worker_prop(name, "Configured"), True)
        self.assertNotIn("was removed from the configuration", master.log())
        self.sys.write_config(GOOD)
        self.assertEqual(self.sys.wait_build(self.sys.submit("b"))[1], "success")

    def test_a_removed_worker_exits_3_and_says_why(self):
        self.sys.write_config(GOOD)
        self.sys.start_master()
        w1 = self.sys.start_worker("w1")
        w2 = self.sys.start_worker("w2")
        self.sys.write_config(GOOD.replace("[worker w1]\ntype = local\n", "").replace("w1, w2", "w2"))
        self.sys.call(MASTER_PATH, MASTER1, "Reload")
        self.assertEqual(w1.wait(timeout=20), 3, w1.log())
        status = [m for m in w1.messages if "STATUS=" in m][-1]
        self.assertIn("removed from the master's configuration", status)
        self.assertIn("removed worker w1 from its configuration", w1.log())
        self.assertTrue(w2.alive())
        # A Shutdown of a configured worker is still a clean exit.
        self.sys.call(self.sys.worker_path("w2"), "org.buildyard.Worker1", "Shutdown", "b", "false")
        self.assertEqual(w2.wait(timeout=20), 0, w2.log())


if __name__ == "__main__":
    unittest.main()
