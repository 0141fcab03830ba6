"""What the OpenStack fixture does over REST as Keystone's admin (or as
the backend user): the catalog, project, role and user of the backend,
flavors and images, and the calls the tests make on Keystone and Nova
behind the backend's back. A mixin of openstack_fixture.OpenStack."""

import base64
import os
import time
import uuid

from openstack_names import (ADMIN_PASSWORD, HUGE, IMAGE, NOVA_MICROVERSION, PROJECT, REGION, ROLE,  # noqa: F401
                             SMALL, USER)
from openstack_rest import HttpError, Session, http, password_auth


class AdminCalls:
    def _setup_keystone(self):
        """The catalog, the backend's project, role and user (REST as admin)."""
        t0 = time.monotonic()
        admin = Session(self.auth_url, password_auth("admin", ADMIN_PASSWORD, "admin"), REGION)
        ks = self.auth_url

        def post(path, body):
            return http("POST", ks + path, body, {"X-Auth-Token": admin.token()})[2]

        def get(path):
            return http("GET", ks + path, None, {"X-Auth-Token": admin.token()})[2]

        for name, typ, url in [("placement", "placement", f"http://127.0.0.1:{self.ports['placement']}"),
                               ("glance", "image", f"http://127.0.0.1:{self.ports['glance']}"),
                               ("nova", "compute", f"http://127.0.0.1:{self.ports['nova']}/v2.1"),
                               ("neutron", "network", f"http://127.0.0.1:{self.ports['neutron']}")]:
            sid = post("/services", {"service": {"name": name, "type": typ, "enabled": True}})["service"]["id"]
            for iface in ("public", "internal", "admin"):
                post("/endpoints", {"endpoint": {"service_id": sid, "interface": iface, "url": url,
                                                 "region_id": REGION, "enabled": True}})
        roles = {r["name"]: r["id"] for r in get("/roles")["roles"]}
        role_id = post("/roles", {"role": {"name": ROLE}})["role"]["id"]
        http("PUT", f"{ks}/roles/{role_id}/implies/{roles['reader']}", None, {"X-Auth-Token": admin.token()})
        domain = get("/domains?name=Default")["domains"][0]["id"]
        self.project_id = post("/projects", {"project": {"name": PROJECT, "domain_id": domain}})["project"]["id"]
        self.user_id = post("/users", {"user": {"name": USER, "password": self.password, "domain_id": domain,
                                                 "default_project_id": self.project_id}})["user"]["id"]
        http("PUT", f"{ks}/projects/{self.project_id}/users/{self.user_id}/roles/{role_id}", None,
             {"X-Auth-Token": admin.token()})
        self.role_id = role_id
        self.timings["keystone set-up"] = time.monotonic() - t0

    def _create_flavors_and_images(self):
        a = self.admin
        for name, vcpus, ram, disk in ((SMALL, 1, 128, 1), (HUGE, 64, 65536, 2000)):
            f = a.post("compute", "/flavors", {"flavor": {"name": name, "vcpus": vcpus, "ram": ram, "disk": disk}})
            self.flavors[name] = f["flavor"]["id"]
        path = self.path("by-image.raw")  # 1 MiB of zeroes: all the fake driver needs
        with open(path, "wb") as f:
            f.truncate(1 << 20)
        self.image_id = self.upload_image(IMAGE, path)

    def upload_image(self, name, path, disk_format="raw", container_format="bare", properties=None):
        """A public image in Glance, uploaded and active. Returns its ID."""
        im = self.admin.post("image", "/v2/images", {"name": name, "disk_format": disk_format,
                                                     "container_format": container_format, "visibility": "public",
                                                     **(properties or {})})
        with open(path, "rb") as f:
            self.admin.request("image", "PUT", f"/v2/images/{im['id']}/file", raw=f.read(),
                               headers={"Content-Type": "application/octet-stream"})
        status = self.admin.get("image", f"/v2/images/{im['id']}")["status"]
        if status != "active":
            raise RuntimeError(f"image {name} is {status} after its upload")
        return im["id"]

    def _wait_compute_discovered(self, timeout=120):
        """The compute host is up, mapped to the cell (the scheduler's
        discovery) and has its inventory in Placement."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive("nova-compute")
            hyps = self.admin.get("compute", "/os-hypervisors/detail", microversion="2.53")["hypervisors"]
            up = [h for h in hyps if h["state"] == "up" and h["status"] == "enabled"]
            if up:
                rps = self.admin.get("placement", "/resource_providers")["resource_providers"]
                if rps:
                    inv = self.admin.get("placement", f"/resource_providers/{rps[0]['uuid']}/inventories")
                    if "VCPU" in inv.get("inventories", {}):
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the compute host was not discovered within {timeout} s:\n"
                                   + self._tail(self.path("log", "nova-compute.log")))
            time.sleep(0.5)

    # ------------------------------------------------------------ helpers

    def password_auth(self):
        return password_auth(self.user, self.password, self.project, self.user_domain, self.project_domain)

    def application_credential(self, name=None, roles=None):
        """Creates an application credential of the backend user (as that
        user: Keystone lets a user make its own). Returns (id, secret)."""
        s = self.user_session
        body = {"application_credential": {"name": name or "buildyard-" + uuid.uuid4().hex[:8]}}
        if roles:
            body["application_credential"]["roles"] = [{"name": r} for r in roles]
        _, _, r = http("POST", f"{self.auth_url}/users/{self.user_id}/application_credentials", body,
                       {"X-Auth-Token": s.token()})
        return r["application_credential"]["id"], r["application_credential"]["secret"]

    def clouds_yaml(self, path, cloud_name="buildyard", auth_type="password", application_credential=None,
                    interface="public", region=None, extra=None):
        """Writes a clouds.yaml for the backend user at `path` (mode 0600)
        and returns its text. auth_type "password" (project and domain
        scoping by name) or "v3applicationcredential" (with
        application_credential = (id, secret), default: a new one).
        `extra` adds keys to the cloud's entry (strings, as YAML scalars)."""
        lines = ["clouds:", f"  {cloud_name}:"]
        if auth_type == "password":
            lines += ["    auth_type: password", "    auth:", f"      auth_url: {self.auth_url}",
                      f"      username: {self.user}", f"      password: {self.password}",
                      f"      project_name: {self.project}", f"      user_domain_name: {self.user_domain}",
                      f"      project_domain_name: {self.project_domain}"]
        elif auth_type == "v3applicationcredential":
            cid, secret = application_credential or self.application_credential()
            lines += ["    auth_type: v3applicationcredential", "    auth:", f"      auth_url: {self.auth_url}",
                      f"      application_credential_id: {cid}",
                      f"      application_credential_secret: {secret}"]
        else:
            raise ValueError(f"unknown auth_type {auth_type}")
        lines += [f"    region_name: {region or self.region}", f"    interface: {interface}",
                  "    identity_api_version: 3"]
        for k, v in (extra or {}).items():
            lines.append(f"    {k}: {v}")
        text = "\n".join(lines) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return text

    # Admin helpers (Nova as Keystone's admin, over REST).

    def servers(self, all_tenants=True, **filters):
        """Every server (all projects by default), in detail: status,
        metadata, fault, OS-EXT-SRV-ATTR:user_data..."""
        q = "&".join([*(["all_tenants=1"] if all_tenants else []), *(f"{k}={v}" for k, v in filters.items())])
        return self.admin.get("compute", "/servers/detail" + ("?" + q if q else ""),
                              microversion=NOVA_MICROVERSION)["servers"]

    def server(self, server_id):
        """A server in detail as admin, or None when Nova no longer has it."""
        try:
            return self.admin.get("compute", f"/servers/{server_id}", microversion=NOVA_MICROVERSION)["server"]
        except HttpError as e:
            if e.status == 404:
                return None
            raise

    def user_data(self, server_id):
        """The server's user data, decoded (bytes), or None."""
        ud = self.server(server_id)["OS-EXT-SRV-ATTR:user_data"]
        return base64.b64decode(ud) if ud else None

    def delete_server(self, server_id, wait=True, timeout=60):
        """Deletes a server as admin (behind the backend's back)."""
        self.admin.request("compute", "DELETE", f"/servers/{server_id}")
        if wait:
            self.wait_gone(server_id, timeout)

    def create_server(self, name, metadata=None, user_data=None, flavor=SMALL, image=None, networks="none",
                      as_user=True, wait=True, timeout=120):
        """Creates a server (as the backend user by default, in its
        project: a "leaked" server when metadata carries buildyard:owner).
        networks: "none", "auto" or a list like [{"uuid": fixture.network_id}].
        Returns the server (ACTIVE or ERROR when wait, else as created)."""
        s = self.user_session if as_user else self.admin
        body = {"name": name, "imageRef": image or self.image_id,
                "flavorRef": self.flavors.get(flavor, flavor), "networks": networks,
                "metadata": metadata or {}}
        if user_data is not None:
            body["user_data"] = base64.b64encode(user_data if isinstance(user_data, bytes)
                                                 else user_data.encode()).decode()
        sid = s.post("compute", "/servers", {"server": body}, microversion=NOVA_MICROVERSION)["server"]["id"]
        return self.wait_status(sid, ("ACTIVE", "ERROR"), timeout) if wait else {"id": sid}

    def wait_status(self, server_id, statuses=("ACTIVE", "ERROR"), timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            sv = self.server(server_id)
            if sv and sv["status"] in statuses:
                return sv
            if time.monotonic() > deadline:
                raise AssertionError(f"server {server_id} is {sv and sv['status']} after {timeout} s, "
                                     f"not one of {statuses}\n" + self.server_log(server_id))
            time.sleep(0.3)

    def wait_gone(self, server_id, timeout=60):
        deadline = time.monotonic() + timeout
        while self.server(server_id) is not None:
            if time.monotonic() > deadline:
                sv = self.server(server_id) or {}
                raise AssertionError(f"server {server_id} still listed after {timeout} s: status "
                                     f"{sv.get('status')}, task {sv.get('OS-EXT-STS:task_state')}\n"
                                     + self.server_log(server_id))
            time.sleep(0.3)

    def server_log(self, server_id, lines=20):
        """What Nova's services logged about a server (their last lines
        naming it), for a failure's message: the scratch directory and its
        logs go with stop()."""
        out = []
        for name in ("nova-api-wsgi", "nova-conductor", "nova-scheduler", "nova-compute"):
            try:
                with open(self.path("log", name + ".log"), errors="replace") as f:
                    out += [f"{name}: {line.rstrip()[:400]}" for line in f if server_id in line]
            except OSError:
                pass
        return "\n".join(out[-lines:])

    def user_token(self):
        """A new token of the backend user (a login of its own)."""
        return Session(self.auth_url, self.password_auth(), REGION).token()

    def token_valid(self, token):
        """Whether Keystone still accepts a token (its validation, as admin)."""
        try:
            http("GET", self.auth_url + "/auth/tokens", None,
                 {"X-Auth-Token": self.admin.token(), "X-Subject-Token": token})
            return True
        except HttpError as e:
            if e.status == 404:
                return False
            raise

    def revoke_tokens(self, user_id=None):
        """Revokes every token Keystone has issued to a user so far (the
        backend user by default), behind its back, as an admin would.
        Keystone records a revocation event for a user that leaves a group,
        so the user joins an empty group of the fixture's and leaves it;
        its password and roles stay, so it can log in again. Keystone keeps
        the event to the second: a login in the same second is refused as
        well."""
        ks, h = self.auth_url, {"X-Auth-Token": self.admin.token()}
        if getattr(self, "_revoke_group", None) is None:
            domain = http("GET", ks + "/domains?name=Default", None, h)[2]["domains"][0]["id"]
            self._revoke_group = http("POST", ks + "/groups", {"group": {
                "name": "buildyard-revoke-" + uuid.uuid4().hex[:8], "domain_id": domain}}, h)[2]["group"]["id"]
        user_id = user_id or self.user_id
        http("PUT", f"{ks}/groups/{self._revoke_group}/users/{user_id}", None, h)
        http("DELETE", f"{ks}/groups/{self._revoke_group}/users/{user_id}", None, h)
        if user_id == self.user_id:
            self.user_session.forget_token()
