"""Input from outside, end to end: a config that is not UTF-8 is refused
with FILE:LINE (it used to crash the master on Describe and on every
dispatch), and what a bus caller names is bounded and logged escaped."""

import os
import re
import unittest

from harness import BIN, MASTER_PATH, SystemTest, dbus_send

MASTER1 = "org.buildyard.Master1"
WORKER1 = "org.buildyard.Worker1"

GOOD = """\
[master]
listen =
[worker w1]
type = local
property.os = linux
[builder hello]
workers = w1
step.1 = echo hello
"""


def send(system, path, method, *args, user=None):
    return dbus_send(system, path, method, *args, user=user)


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


class NotUtf8(SystemTest):
    def test_master_refuses_a_config_that_is_not_utf8(self):
        s = self.sys
        # Line 6: a property value in Latin-1.
        write_bytes(s.config_path, GOOD.replace("property.os = linux", "property.os = linux\nproperty.note = caf\xe9")
                    .encode("latin-1"))
        r = s.run([os.path.join(BIN, "buildyard-masterd"), "--config", s.config_path, "--check-config"], check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"{s.config_path}:6: [worker w1]: line is not valid UTF-8 (byte 0xe9 at column 20)",
                      r.stdout + r.stderr)
        # Before: the master started, and Describe (callable by anyone)
        # aborted it on an uncaught JSON type_error, on every restart.
        m = s.start_master(wait_ready=False)
        self.assertNotEqual(m.wait(timeout=20), 0)
        self.assertIn(f"{s.config_path}:6: [worker w1]: line is not valid UTF-8", m.log())

    def test_reload_keeps_the_old_config_and_describe_works(self):
        s = self.sys
        s.write_config(GOOD)
        s.start_master()
        s.start_worker("w1")
        # A drop-in with a step that is not UTF-8, and one whose name is not.
        write_bytes(os.path.join(s.dir, "etc", "master.d", "steps.ini"),
                    b"[builder other]\nworkers = w1\nstep.1 = echo \xff\xfe\n")
        write_bytes(os.path.join(s.dir, "etc", "master.d", b"x\xff.ini".decode("utf-8", "surrogateescape")),
                    b"[worker w9]\ntype = local\n")
        err, text = send(s, MASTER_PATH, f"{MASTER1}.Reload")
        self.assertEqual(err, "org.buildyard.Error.ConfigInvalid", text)
        self.assertIn("steps.ini:3: [builder other]: line is not valid UTF-8 (byte 0xff at column 15)", text)
        self.assertIn("x\\xff.ini: file name is not valid UTF-8", text)
        self.assertTrue(s.master.alive())
        describe = s.call(MASTER_PATH, MASTER1, "Describe")[0]
        self.assertIn('"w1"', describe)
        self.assertNotIn("other", describe)
        bid = s.submit("hello")
        self.assertEqual(s.wait_build(bid)[1], "success")
        self.assertTrue(s.master.alive())


class CallerInputIsBounded(SystemTest):
    def setUp(self):
        super().setUp()
        self.sys.write_config(GOOD)
        self.sys.start_master()

    def log_lines(self):
        return self.sys.master.log().split("\n")

    def test_attach_with_a_huge_name_is_refused_before_it_is_logged(self):
        s = self.sys
        huge = "n" * 100000  # busctl and dbus-send take at most 128 KiB per argument
        for _ in range(20):
            err, text = send(s, MASTER_PATH, "org.buildyard.WorkerLink1.Attach", f"string:{huge}",
                             "dict:string:string:")
            self.assertEqual(err, "org.buildyard.Error.InvalidArgument", text)
        self.assertIn("the worker name is 100000 bytes long; the limit is 64", text)
        self.assertLess(os.path.getsize(s.master.log_path), 20000, "20 calls wrote 2 MB of log before")

    def test_a_newline_in_a_name_forges_no_log_line(self):
        s = self.sys
        err, text = send(s, MASTER_PATH, "org.buildyard.WorkerLink1.Attach",
                         "string:x\nnotice: worker w1 attached (forged)", "dict:string:string:")
        self.assertEqual(err, "org.buildyard.Error.NoSuchWorker", text)
        self.assertTrue(any("refused to attach unknown worker 'x\\nnotice: worker w1 attached (forged)'" in line
                            for line in self.log_lines()), s.master.log())
        self.assertFalse(any(line.startswith("notice: worker w1") for line in self.log_lines()))

    def test_pause_reasons_are_bounded_and_escaped(self):
        s = self.sys
        w1 = s.worker_path("w1")
        err, text = send(s, w1, f"{WORKER1}.Pause", "string:" + "r" * 1025)
        self.assertEqual(err, "org.buildyard.Error.InvalidArgument", text)
        self.assertIn("the reason is 1025 bytes long; the limit is 1024", text)
        self.assertIs(s.worker_prop("w1", "Paused"), False)
        err, text = send(s, w1, f"{WORKER1}.Pause", "string:disk\nbuildyard-masterd[1]: error: forged")
        self.assertIsNone(err, text)
        self.assertEqual(s.worker_prop("w1", "PauseReason"), "disk\nbuildyard-masterd[1]: error: forged")
        self.assertIn("worker w1 paused: disk\\nbuildyard-masterd[1]: error: forged", s.master.log())
        self.assertFalse(any(line.startswith("buildyard-masterd[1]") for line in self.log_lines()))

    def test_submit_build_arguments_are_bounded(self):
        s = self.sys
        long_builder = "b" * 65
        err, text = send(s, MASTER_PATH, f"{MASTER1}.SubmitBuild", f"string:{long_builder}",
                         "dict:string:string:k,v")
        self.assertEqual(err, "org.buildyard.Error.InvalidArgument", text)
        self.assertIn("the builder name is 65 bytes long; the limit is 64", text)
        many = ",".join(f"k{i},v" for i in range(129))
        err, text = send(s, MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:hello", f"dict:string:string:{many}")
        self.assertEqual(err, "org.buildyard.Error.InvalidArgument", text)
        self.assertIn("build properties: 129 entries; the limit is 128", text)
        err, text = send(s, MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:hello",
                         "dict:string:string:" + "k" * 129 + ",v")
        self.assertEqual(err, "org.buildyard.Error.InvalidArgument", text)
        self.assertIn("build properties: a key is 129 bytes long; the limit is 128", text)
        err, text = send(s, MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:hello",
                         "dict:string:string:big," + "v" * 16385)
        self.assertEqual(err, "org.buildyard.Error.InvalidArgument", text)
        self.assertIn("build properties: the value of 'big' is 16385 bytes long; the limit is 16384", text)
        self.assertEqual(s.call(MASTER_PATH, MASTER1, "ListBuilds", "t", 0)[0], [], "nothing was submitted")
        # At the limits, it is accepted.
        many = ",".join(f"k{i},v" for i in range(128))
        err, text = send(s, MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:hello", f"dict:string:string:{many}")
        self.assertIsNone(err, text)
        self.assertTrue(re.search(r"object path \"/org/buildyard/Master1/build/_3\d", text), text)


if __name__ == "__main__":
    unittest.main()
