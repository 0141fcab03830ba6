"""buildyard-workerd --latent reading its identity from a cloud's user data:
EC2's IMDSv2 (token PUT, then the user data with the token), OpenStack's
metadata service and a config drive, each pointed elsewhere with
--metadata-url (the EC2 stand-in's metadata endpoints, a directory laid out
as a config-2 drive). Asserts the identity the worker resolved and where it
says it came from, that the token never reaches its log, and the errors of
missing or partial user data."""

import os
import secrets
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from ec2_standin import Ec2StandIn  # noqa: E402
from harness import BIN, wait_for  # noqa: E402


class MetadataSourcesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.standin = Ec2StandIn(self.dir.name, {"AKIDUNUSED": "unused"}).start()
        self.addCleanup(self.standin.stop)
        self.token = secrets.token_hex(32)
        self.user_data = (f"#!/bin/sh\nbuildyard.worker=cloud1\nbuildyard.master=127.0.0.1:1\n"
                          f"buildyard.token={self.token}\n").encode()

    def instance(self, user_data):
        instance_id = self.standin.launch_untracked({"Name": "metadata test"})
        self.standin.instances[instance_id].user_data = user_data
        return f"{self.standin.url}meta/{instance_id}"

    def worker(self, *args):
        """Starts the worker; returns (process, log path)."""
        log = os.path.join(self.dir.name, f"worker-{secrets.token_hex(4)}.log")
        env = {k: v for k, v in os.environ.items()
               if k not in ("BUILDYARD_WORKER_NAME", "BUILDYARD_MASTER", "BUILDYARD_TOKEN", "CREDENTIALS_DIRECTORY")}
        with open(log, "wb") as f:
            p = subprocess.Popen([os.path.join(BIN, "buildyard-workerd"), "--latent", "--basedir", self.dir.name,
                                  *args], stdout=f, stderr=subprocess.STDOUT, env=env)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait()))
        return p, log

    def read(self, log):
        with open(log, errors="replace") as f:
            return f.read()

    def expect_identity(self, args, source):
        p, log = self.worker(*args)
        wait_for(lambda: "latent worker cloud1" in self.read(log) or p.poll() is not None, 20,
                 "the worker to resolve its identity")
        text = self.read(log)
        self.assertIn(f"latent worker cloud1 of the master at 127.0.0.1:1 (identity from the user data from "
                      f"{source})", text)
        # It goes on trying to reach its (absent) master, and never says the token.
        time.sleep(0.3)
        self.assertIsNone(p.poll(), text)
        self.assertNotIn(self.token, self.read(log))

    def expect_failure(self, args, message):
        p, log = self.worker(*args)
        self.assertEqual(p.wait(30), 1, self.read(log))
        self.assertIn(message, self.read(log))
        self.assertNotIn(self.token, self.read(log))

    def config_drive(self, user_data):
        drive = tempfile.mkdtemp(dir=self.dir.name)
        os.makedirs(os.path.join(drive, "openstack", "latest"))
        if user_data is not None:
            with open(os.path.join(drive, "openstack", "latest", "user_data"), "wb") as f:
                f.write(user_data)
        return drive

    def test_ec2_imdsv2(self):
        url = self.instance(self.user_data)
        self.expect_identity(["--metadata-url", url], f"the EC2 metadata service at {url}")
        self.assertTrue(self.standin.imds_tokens, "no session token was asked for")

    def test_openstack_metadata_service(self):
        url = self.instance(self.user_data)
        self.expect_identity(["--metadata", "openstack", "--metadata-url", url],
                             f"the OpenStack metadata service at {url}")
        self.assertFalse(self.standin.imds_tokens)

    def test_config_drive(self):
        drive = self.config_drive(self.user_data)
        self.expect_identity(["--metadata", "config-drive", "--metadata-url", drive], f"the config drive at {drive}")

    def test_missing_and_partial_user_data(self):
        url = self.instance(b"")
        self.expect_failure(["--metadata-url", url],
                            f"nor buildyard.worker, buildyard.master and buildyard.token lines in the user data "
                            f"from the EC2 metadata service at {url}")
        url = self.instance(f"buildyard.token={self.token}\n".encode())
        self.expect_failure(["--metadata", "openstack", "--metadata-url", url],
                            "buildyard.token is set but buildyard.worker and buildyard.master are missing")
        self.expect_failure(["--metadata", "config-drive", "--metadata-url", self.dir.name + "/nowhere"],
                            "holds no config drive (no openstack/ in it)")
        self.expect_failure(["--metadata-url", f"{self.standin.url}meta/i-00000000000000000"],
                            "cannot read the user data from the EC2 metadata service")
        # --metadata none: the error names no cloud at all.
        p, log = self.worker("--metadata", "none")
        self.assertEqual(p.wait(30), 1)
        self.assertNotIn("user data", self.read(log))

    def test_metadata_options_go_with_latent_only(self):
        r = subprocess.run([os.path.join(BIN, "buildyard-workerd"), "--name", "w", "--metadata", "openstack"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--metadata and --metadata-url go with --latent only", r.stderr)
        r = subprocess.run([os.path.join(BIN, "buildyard-workerd"), "--latent", "--metadata", "azure"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("'azure' is not ec2, openstack, config-drive or none", r.stderr)


if __name__ == "__main__":
    unittest.main()
