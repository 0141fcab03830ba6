"""The OpenStack fixture itself, against the real services it starts: the
backend's user creates a server with user data and owner metadata, sees
it ACTIVE, the admin reads the user data back, the user deletes it and
Nova lists it no more; a flavor larger than the host ends in ERROR with
Nova's NoValidHost fault; the configured network (answered by the Neutron
stub) gets a port; the user's role is not admin; clouds.yaml and
application credentials authenticate; the token lives as long as asked;
stop() leaves no process, port or file behind (checked in tearDownModule),
and the reaper does the same when the fixture's process dies."""

import os
import socket
import subprocess
import tempfile
import time
import unittest

import openstack_fixture
from openstack_fixture import HUGE, NOVA_MICROVERSION, SMALL, OpenStack
from openstack_rest import HttpError, Session, http

os_ = None


def setUpModule():
    global os_
    os_ = openstack_fixture.shared_for_module()


def tearDownModule():
    """Stops the fixture and checks that nothing of it is left: no process
    of any group it started, no listener on its ports, no scratch
    directory (a failure here fails the test module)."""
    pids, ports, scratch = os_.processes(), os_.ports, os_.dir
    openstack_fixture.stop_shared()
    os_.stop()  # twice is fine
    left = [f"{name} ({pid})" for name, pid in pids.items() if _alive_in_group(pid)]
    for name, port in ports.items():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                left.append(f"a listener on {name}'s port {port}")
    if os.path.exists(scratch):
        left.append(scratch)
    if left:
        raise AssertionError("the fixture left behind: " + ", ".join(left))


class FixtureTest(unittest.TestCase):
    def test_server_lifecycle_as_the_backend_user(self):
        owner = {"buildyard:owner": "fixture-test", "buildyard:worker": "w1"}
        sv = os_.create_server("by-lifecycle", metadata=owner, user_data="#!/bin/sh\necho buildyard\n")
        self.assertEqual(sv["status"], "ACTIVE", sv.get("fault"))
        self.assertEqual(sv["tenant_id"], os_.user_session.token_body["project"]["id"])
        self.assertEqual(sv["metadata"], owner)
        self.assertEqual(sv["flavor"]["original_name"], SMALL)
        # The admin reads the user data back (microversion 2.3+), and sees
        # the server in the all-projects listing with its metadata.
        self.assertEqual(os_.user_data(sv["id"]), b"#!/bin/sh\necho buildyard\n")
        listed = [s for s in os_.servers() if s["id"] == sv["id"]]
        self.assertEqual(len(listed), 1)
        self.assertEqual(listed[0]["metadata"]["buildyard:owner"], "fixture-test")
        # The user deletes it; Nova lists it no more.
        os_.user_session.request("compute", "DELETE", f"/servers/{sv['id']}")
        os_.wait_gone(sv["id"])
        self.assertNotIn(sv["id"], [s["id"] for s in os_.servers()])

    def test_a_flavor_larger_than_the_host_ends_in_error_with_a_fault(self):
        sv = os_.create_server("by-too-big", flavor=HUGE, metadata={"buildyard:owner": "fixture-test"})
        try:
            self.assertEqual(sv["status"], "ERROR")
            self.assertIn("No valid host was found", sv["fault"]["message"])
            # The user sees the fault too (without the details).
            mine = os_.user_session.get("compute", f"/servers/{sv['id']}", microversion=NOVA_MICROVERSION)
            self.assertIn("No valid host was found", mine["server"]["fault"]["message"])
        finally:
            os_.delete_server(sv["id"])

    def test_the_configured_network_gets_a_port_from_the_stub(self):
        sv = os_.create_server("by-net-server", networks=[{"uuid": os_.network_id}])
        try:
            self.assertEqual(sv["status"], "ACTIVE", sv.get("fault"))
            (addr,) = sv["addresses"]["by-net"]
            self.assertTrue(addr["addr"].startswith("10.254.0."), addr)
            nets = os_.user_session.get("network", "/v2.0/networks?name=by-net")["networks"]
            self.assertEqual([n["id"] for n in nets], [os_.network_id])
        finally:
            os_.delete_server(sv["id"])
        ports = os_.admin.get("network", f"/v2.0/ports?device_id={sv['id']}")["ports"]
        self.assertEqual(ports, [], "Nova deletes the server's port")

    def test_admin_helpers_leak_and_delete_behind_the_backends_back(self):
        leaked = os_.create_server("by-leaked", metadata={"buildyard:owner": "someone"}, wait=False)
        sv = os_.wait_status(leaked["id"])
        self.assertEqual(sv["status"], "ACTIVE", sv.get("fault"))
        self.assertEqual(os_.server(sv["id"])["metadata"], {"buildyard:owner": "someone"})
        os_.delete_server(sv["id"])
        self.assertIsNone(os_.server(sv["id"]))

    def test_token_lifetime_is_the_configured_one(self):
        self.assertAlmostEqual(_lifetime(os_.user_session.token_body), os_.token_expiration, delta=2)

    def test_the_backend_role_is_neither_admin_nor_member(self):
        roles = {r["name"] for r in os_.user_session.token_body["roles"]}
        self.assertIn("buildyard-latent", roles)
        self.assertIn("reader", roles, "buildyard-latent implies reader")
        self.assertFalse(roles & {"admin", "member"}, roles)
        u = os_.user_session
        # It reads flavors and images ...
        names = {f["name"] for f in u.get("compute", "/flavors")["flavors"]}
        self.assertTrue({SMALL, HUGE} <= names, names)
        images = u.get("image", "/v2/images?name=by-image")["images"]
        self.assertEqual([i["id"] for i in images], [os_.image_id])
        # ... but may not list all projects' servers, make flavors or
        # upload images.
        for call in (lambda: u.get("compute", "/servers/detail?all_tenants=1"),
                     lambda: u.post("compute", "/flavors", {"flavor": {"name": "x", "vcpus": 1, "ram": 64,
                                                                        "disk": 1}}),
                     lambda: u.post("image", "/v2/images", {"name": "x", "disk_format": "raw",
                                                            "container_format": "bare"})):
            with self.assertRaises(HttpError) as cm:
                call()
            self.assertEqual(cm.exception.status, 403, cm.exception)

    def test_clouds_yaml_credentials_authenticate(self):
        import yaml  # python3-yaml, a dependency of the OpenStack packages

        with tempfile.TemporaryDirectory() as d:
            for auth_type in ("password", "v3applicationcredential"):
                path = os.path.join(d, auth_type + ".yaml")
                os_.clouds_yaml(path, "by-cloud", auth_type=auth_type)
                self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
                with open(path) as f:
                    cloud = yaml.safe_load(f)["clouds"]["by-cloud"]
                self.assertEqual(cloud["region_name"], os_.region)
                a = cloud["auth"]
                if auth_type == "password":
                    body = {"identity": {"methods": ["password"], "password": {"user": {
                        "name": a["username"], "password": a["password"],
                        "domain": {"name": a["user_domain_name"]}}}},
                        "scope": {"project": {"name": a["project_name"],
                                              "domain": {"name": a["project_domain_name"]}}}}
                else:
                    body = {"identity": {"methods": ["application_credential"], "application_credential": {
                        "id": a["application_credential_id"], "secret": a["application_credential_secret"]}}}
                s = Session(a["auth_url"], body, cloud["region_name"])
                s.token()
                self.assertEqual(s.token_body["project"]["name"], "buildyard")
                self.assertEqual(s.token_body["user"]["name"], "buildyard-latent")
                s.get("compute", "/servers")  # the token works against Nova
            with self.assertRaises(HttpError) as cm:
                http("POST", os_.auth_url + "/auth/tokens", {"auth": {"identity": {
                    "methods": ["password"], "password": {"user": {"name": os_.user, "password": "wrong",
                                                                   "domain": {"name": "Default"}}}}}})
            self.assertEqual(cm.exception.status, 401)


class ReaperTest(unittest.TestCase):
    def test_the_reaper_stops_what_a_dead_fixture_left(self):
        """reaper.py, as the fixture starts it, when the fixture's process
        dies without stop(): the pipe's end reaches it, and it stops every
        listed process group (a child of the leader too) and removes the
        directory."""
        with tempfile.TemporaryDirectory() as parent:
            scratch = os.path.join(parent, "scratch")
            os.makedirs(os.path.join(scratch, "run"))
            service = subprocess.Popen(["sh", "-c", "sleep 600 & wait"], start_new_session=True)
            self.addCleanup(lambda: _kill_group(service.pid))
            with open(os.path.join(scratch, "run", "pgids"), "w") as f:
                f.write(f"{service.pid}\n")
            r, w = os.pipe()
            reaper = subprocess.Popen(["/usr/bin/python3", "-P", os.path.join(openstack_fixture.HERE, "reaper.py"),
                                       scratch], stdin=r, start_new_session=True)
            os.close(r)
            time.sleep(1)
            self.assertIsNone(reaper.poll(), "the reaper waits while the fixture lives")
            self.assertTrue(_alive_in_group(service.pid))
            os.close(w)  # what the kernel does when the fixture's process dies
            self.assertEqual(reaper.wait(timeout=30), 0)
            service.wait(timeout=10)
            self.assertFalse(_alive_in_group(service.pid))
            self.assertFalse(os.path.exists(scratch))


def _kill_group(pgid):
    try:
        os.killpg(pgid, 9)
    except ProcessLookupError:
        pass


def _lifetime(token_body):
    from datetime import datetime
    t = lambda k: datetime.fromisoformat(token_body[k].replace("Z", "+00:00")).timestamp()  # noqa: E731
    return t("expires_at") - t("issued_at")


def _alive_in_group(pgid):
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    return True
            except (OSError, IndexError, ValueError):
                pass
    return False


if __name__ == "__main__":
    unittest.main()
