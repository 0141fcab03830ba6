"""OpenStack latent workers end to end, against the real Keystone, Glance,
Placement and Nova the fixture starts (openstack_fixture.py; Nova's fake
virt driver, a Neutron stub). buildyard-latentd logs in as the fixture's
own backend user (role buildyard-latent on project buildyard, not admin).

Nova's fake driver boots nothing, so this test plays the server's part: a
"cloud-init" thread watches Nova as admin, and for each ACTIVE server of
this master reads its user data back (admin microversion), puts it on a
config drive (a directory with openstack/latest/user_data) and starts the
real buildyard-workerd --latent --metadata config-drive on it; when Nova no
longer lists the server, its worker is killed, as the machine would be.
Covered: a build on a fresh server (metadata, user data, password from a
systemd credential), build_wait_timeout 0 / 600 (application credential,
openstack.network = none, ListInstances) / negative (with a token that
expires mid-life renewed: Keystone's tokens last 60 s here; then one that
an admin revokes, refused with 401 and replaced), ERROR servers (a flavor
too large for the host; an image that does not exist) ending in
quarantine with the cause in LastStartError, a leaked server reaped (at
start and by Reap), and a server deleted under a running build (the build
ends retry and reruns)."""

import json
import os
import re
import secrets
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import openstack_fixture  # noqa: E402
from cloud_init import CloudInit  # noqa: E402
from openstack_rest import HttpError  # noqa: E402
from openstack_fixture import HUGE, IMAGE, NETWORK, SMALL  # noqa: E402
from harness import (BIN, LATENT, LATENT_PATH, SystemTest, free_port, gate_dir, gate_step,  # noqa: E402
                     master_ini, open_gate, start_latentd, start_master_env, wait_for, wait_gate_reached)

TOKEN_LIFE = 60  # Keystone's [token] expiration for this module: latentd renews at 30 s
CLOUD = "ci"
os_ = None


def setUpModule():
    global os_
    os_ = openstack_fixture.shared_for_module(token_expiration=TOKEN_LIFE)


def tearDownModule():
    openstack_fixture.stop_shared()


def gone(server_id):
    """Nova no longer lists the server (an admin may still see it DELETED
    for a moment)."""
    s = os_.server(server_id)
    return s is None or s["status"] == "DELETED"


class OpenStackLatentTest(SystemTest):
    counter = 0

    def setUp(self):
        super().setUp()
        OpenStackLatentTest.counter += 1
        self.master_name = f"os{os.getpid()}-{OpenStackLatentTest.counter}"
        self.port = free_port()
        gate_dir(self.sys)
        self.clouds = os.path.join(self.sys.dir, "clouds.yaml")
        self.init = CloudInit(os_, self.sys.dir, self.master_name, os.path.join(BIN, "buildyard-workerd"))
        self.addCleanup(self.delete_leftovers)
        self.addCleanup(self.init.stop)

    def delete_leftovers(self):
        """What a failed test left (a passing one leaves nothing). Nova on
        SQLite may answer 500 "database is locked" under load: asked again."""
        for attempt in range(5):
            try:
                for s in self.live():
                    os_.delete_server(s["id"], wait=False)
                return
            except HttpError:
                time.sleep(1)

    def write_config(self, worker_extra="", flavor=SMALL, image=IMAGE, network=NETWORK):
        o1 = "\n".join([
            "type = latent", "backend = openstack", f"master_address = 127.0.0.1:{self.port}",
            "missing_timeout = 120", f"openstack.cloud = {CLOUD}", f"openstack.clouds_file = {self.clouds}",
            f"openstack.flavor = {flavor}", f"openstack.image = {image}", f"openstack.network = {network}",
            "openstack.metadata = team=ci", *worker_extra.splitlines()])
        builders = {"where": (["o1"], ["pwd"]), "gated": (["o1"], [gate_step(self.sys)])}
        self.sys.write_config(master_ini({"o1": o1}, builders, name=self.master_name, listen=f"127.0.0.1:{self.port}"))

    def start_daemons(self, latentd_env=None, start_init=True):
        if not os.path.exists(self.clouds):
            os_.clouds_yaml(self.clouds, CLOUD)
        self.latentd = start_latentd(self.sys, latentd_env or {},
                                     settings={"health_interval": "0.5", "lease_check_interval": "0.5"})
        self.master = start_master_env(self.sys, {})
        if start_init:
            self.init.start()

    def latent_call(self, method, *args):
        # Reap waits until Nova lists the server no more: longer than
        # busctl's 25 s under load.
        out = self.sys.busctl("--timeout=180", "call", LATENT, LATENT_PATH, LATENT, method, *args).stdout
        return json.loads(out)["data"]

    def latent_prop(self, name):
        return json.loads(self.sys.busctl("get-property", LATENT, LATENT_PATH, LATENT, name).stdout)["data"]

    def prop(self, name):
        return self.sys.worker_prop("o1", name)

    def wait_state(self, state, timeout=30):
        wait_for(lambda: self.prop("State") == state, timeout, f"worker o1 to be {state}")

    def live(self):
        return [s for s in os_.servers() if s["metadata"].get("buildyard:owner") == self.master_name]

    def wait_no_server(self, timeout=90):
        wait_for(lambda: not self.live(), timeout, "every server of this master to be gone")

    def server_of(self, log):
        """The server a `pwd` step ran on (its worker's basedir)."""
        m = re.search(r"/servers/([0-9a-f-]{36})", log)
        self.assertIsNotNone(m, log)
        return m.group(1)

    def run_build(self, builder="where", timeout=180):
        build_id = self.sys.submit(builder)
        try:
            _, result = self.sys.wait_build(build_id, timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}\nlatentd:\n{self.latentd.log()[-3000:]}") from None
        log = self.sys.read_log(build_id)
        self.assertEqual(result, "success", log + "\n" + self.latentd.log()[-3000:])
        self.assertIsNone(self.init.error)
        return log

    def tokens_issued(self):
        return self.latentd.log().count(f"new token for cloud {CLOUD}")

    # --- tests -------------------------------------------------------------

    def test_a_build_runs_on_a_fresh_server_that_goes_when_idle(self):
        # The password comes from a systemd credential, not clouds.yaml.
        text = os_.clouds_yaml(self.clouds, CLOUD)
        with open(self.clouds, "w") as f:
            f.write("".join(line + "\n" for line in text.splitlines() if "password:" not in line))
        creds = os.path.join(self.sys.dir, "credentials")
        os.makedirs(creds)
        with open(os.path.join(creds, "os-password"), "w") as f:
            f.write(os_.password + "\n")
        self.write_config("build_wait_timeout = 0\nopenstack.credential = os-password")
        self.start_daemons({"CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(self.prop("Backend"), "openstack")
        log = self.run_build()
        server_id = self.server_of(log)
        s = os_.server(server_id)
        start = self.prop("InstanceStart")
        self.assertEqual(s["name"], f"buildyard-{self.master_name}-o1")
        self.assertEqual(s["metadata"], {"buildyard:owner": self.master_name, "buildyard:worker": "o1",
                                         "buildyard:start": start, "team": "ci"})
        self.assertEqual(s["tenant_id"], os_.project_id)
        self.assertEqual(s["user_id"], os_.user_id)
        self.assertEqual(s["flavor"]["original_name"], SMALL)
        self.assertEqual(list(s["addresses"]), [NETWORK])
        user_data = self.init.user_data[server_id]
        self.assertIn("buildyard.worker=o1\n", user_data)
        self.assertIn(f"buildyard.master=127.0.0.1:{self.port}\n", user_data)
        token = re.search(r"buildyard.token=(\S+)", user_data).group(1)
        worker_log = self.init.worker_log(server_id)
        self.assertIn("identity from the user data", worker_log)
        self.assertNotIn(token, worker_log)
        # build_wait_timeout = 0: deleted once the build is over, and Nova lists it no more.
        self.wait_no_server()
        self.wait_state("offline")
        self.assertTrue(gone(server_id))
        self.assertNotEqual(self.server_of(self.run_build()), server_id)
        self.wait_no_server()
        for p in self.sys.procs:
            self.assertNotIn(os_.password, p.log())
            self.assertNotIn(token, p.log())

    def test_build_wait_timeout_600_keeps_the_server_for_the_next_build(self):
        # An application credential instead of a password, and no network.
        os_.clouds_yaml(self.clouds, CLOUD, auth_type="v3applicationcredential")
        self.write_config("build_wait_timeout = 600", network="none")
        self.start_daemons()
        first = self.server_of(self.run_build())
        self.assertEqual(os_.server(first)["addresses"], {})
        self.wait_state("idle")
        self.assertEqual(self.server_of(self.run_build()), first)
        self.assertEqual(len(self.live()), 1)
        # ListInstances shows it, once latentd has seen it ACTIVE: the
        # test's cloud-init polls Nova faster than latentd's wait (at most
        # every 2 s, slower when Nova answers 5xx under load), so the
        # worker may attach and run both builds before latentd knows.
        wait_for(lambda: [r[4] for r in self.latent_call("ListInstances")[0]] == [first], 30,
                 f"ListInstances to show server {first}")
        (row,) = self.latent_call("ListInstances")[0]
        self.assertEqual(row[0], "o1")
        self.assertEqual(row[2], "openstack")
        self.assertEqual(row[3], "running")
        self.assertEqual(row[4], first)
        # Stopping the master stops its workers: the server goes.
        self.master.stop(timeout=60)
        self.wait_no_server(60)

    def test_negative_build_wait_timeout_keeps_it_and_its_token_is_renewed_or_replaced_when_revoked(self):
        self.write_config("build_wait_timeout = -1")
        self.start_daemons()
        first = self.server_of(self.run_build())
        self.wait_state("idle")
        issued = self.tokens_issued()
        self.assertGreaterEqual(issued, 1)
        # Health checks ask Nova every half second; Keystone's token ends
        # after TOKEN_LIFE s, and latentd renews it before it does.
        wait_for(lambda: self.tokens_issued() > issued, TOKEN_LIFE, "a renewed token")
        self.assertEqual([s["id"] for s in self.live()], [first])
        self.assertEqual(self.server_of(self.run_build()), first)
        self.assertNotIn("requires authentication", self.latentd.log())
        self.assertNotIn("the token was refused", self.latentd.log())

        # Keystone refuses latentd's token long before its end: an admin
        # revokes every token of the backend's user. The next health check
        # gets 401; latentd logs in again at once (and once more a second
        # later, should its new token share the second of the revocation)
        # and carries on: no check fails, the server stays, builds run on it.
        mine = os_.user_token()
        self.assertTrue(os_.token_valid(mine))
        issued, seen = self.tokens_issued(), len(self.latentd.log())
        os_.revoke_tokens()
        self.assertFalse(os_.token_valid(mine))
        wait_for(lambda: "the token was refused (HTTP 401); renewing it" in self.latentd.log()[seen:], 30,
                 "latentd to meet the revoked token")
        wait_for(lambda: self.tokens_issued() > issued, 30, "a token issued after the revocation")
        time.sleep(3)  # six more health checks, with the new token
        after = self.latentd.log()[seen:]
        self.assertNotIn("cannot check worker", after)
        self.assertNotIn("requires authentication", after)
        self.assertEqual(self.prop("State"), "idle")
        self.assertEqual([s["id"] for s in self.live()], [first])
        self.assertEqual(self.server_of(self.run_build()), first)
        self.assertEqual(self.prop("StartFailures"), 0)
        self.master.stop(timeout=60)
        self.wait_no_server(60)

    def test_a_server_in_error_is_a_failed_start_with_novas_fault_and_deleted(self):
        self.write_config("build_wait_timeout = 0", flavor=HUGE)
        self.start_daemons()
        build = self.sys.submit("where")
        _, result = self.sys.wait_build(build, 180)
        self.assertEqual(result, "retry")
        self.assertIn("No valid host was found", self.sys.read_log(build))
        error = self.prop("LastStartError")
        self.assertIn("went into ERROR: No valid host was found", error)
        self.assertGreater(self.prop("QuarantinedUntil"), 0)
        self.assertEqual(self.prop("StartFailures"), 1)
        # The ERROR server is deleted.
        self.wait_no_server(60)

    def test_an_image_that_does_not_exist_is_a_failed_start_that_says_so(self):
        self.write_config("build_wait_timeout = 0", image="no-such-image")
        self.start_daemons()
        build = self.sys.submit("where")
        _, result = self.sys.wait_build(build, 120)
        self.assertEqual(result, "retry")
        self.assertIn("openstack.image: no image named 'no-such-image' or with that ID", self.prop("LastStartError"))
        self.assertIn("no image named 'no-such-image'", self.sys.read_log(build))
        self.assertGreater(self.prop("QuarantinedUntil"), 0)
        self.assertFalse(self.live())

    def test_a_leaked_server_is_reaped_and_others_left_alone(self):
        self.write_config()
        leak = os_.create_server(f"buildyard-{self.master_name}-o1", timeout=240, metadata={
            "buildyard:owner": self.master_name, "buildyard:worker": "o1", "buildyard:start": secrets.token_hex(16)})
        other = os_.create_server("someone-else", timeout=240, metadata={
            "buildyard:owner": "another-master", "buildyard:worker": "o1", "buildyard:start": secrets.token_hex(16)})
        self.addCleanup(os_.delete_server, other["id"], False)
        self.start_daemons(start_init=False)
        # The reaper's pass at latentd's start.
        wait_for(lambda: gone(leak["id"]), 120, "the leak to be deleted")
        self.assertEqual(os_.server(other["id"])["status"], "ACTIVE")
        self.assertGreaterEqual(self.latent_prop("ReapedLeaks"), 1)
        # Reap() on demand finds a new one, and waits until it is gone.
        leak2 = os_.create_server("leak2", timeout=240, metadata={
            "buildyard:owner": self.master_name, "buildyard:worker": "o1", "buildyard:start": secrets.token_hex(16)})
        self.assertEqual(self.latent_call("Reap")[0], 1)
        self.assertTrue(gone(leak2["id"]))
        self.assertEqual(os_.server(other["id"])["status"], "ACTIVE")

    def test_a_server_deleted_under_a_build_ends_it_retry_and_it_reruns(self):
        self.write_config("build_wait_timeout = 0")
        self.start_daemons()
        build = self.sys.submit("gated")
        wait_gate_reached(self.sys, build, 180)
        (server,) = self.live()
        for later in range(build + 1, build + 10):
            open_gate(self.sys, later)
        os_.delete_server(server["id"])
        _, result = self.sys.wait_build(build, 90)
        self.assertEqual(result, "retry")
        final, result = self.sys.wait_build(int(self.sys.build_prop(build, "RetriedAs")), 180, follow_retry=True)
        self.assertEqual(result, "success", self.sys.read_log(final))
        self.wait_no_server(60)


if __name__ == "__main__":
    unittest.main()
