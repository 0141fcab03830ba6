#!/usr/bin/python3
"""A small stand-in for Neutron, for the OpenStack test fixture.

Neutron's agents need host networking (bridges, namespaces, DHCP) that the
test machines cannot give, so this answers only what Nova's API and compute
manager ask of Neutron: one network (given on the command line) with one
subnet (10.254.0.0/24, which Nova requires), ports that Nova creates,
updates, lists and deletes (kept in memory, each with an address of that
subnet), a quota without limits, and empty lists for everything else
(security groups, floating IPs, extensions). No packet ever moves: a server gets a port
record but no connectivity.

    neutron_stub.py PORT NETWORK_ID NETWORK_NAME LOG

Every request is appended to LOG (method, path, status), so a test can see
what Nova asked.
"""

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class State:
    def __init__(self, port, network_id, network_name):
        subnet_id = str(uuid.uuid5(uuid.UUID(network_id), "subnet"))
        self.lock = threading.Lock()
        self.port = port
        self.network = {
            "id": network_id, "name": network_name, "status": "ACTIVE", "admin_state_up": True,
            "shared": True, "router:external": False, "subnets": [subnet_id], "mtu": 1500,
            "tenant_id": "", "project_id": "", "port_security_enabled": False,
            "provider:network_type": "local", "availability_zones": [], "tags": [],
        }
        # Nova refuses a network without a subnet; addresses come from it
        # (records only: nothing answers on them).
        self.subnet = {
            "id": subnet_id, "name": network_name + "-subnet", "network_id": network_id, "ip_version": 4,
            "cidr": "10.254.0.0/24", "gateway_ip": "10.254.0.1", "enable_dhcp": False, "dns_nameservers": [],
            "host_routes": [], "allocation_pools": [{"start": "10.254.0.10", "end": "10.254.0.250"}],
            "tenant_id": "", "project_id": "", "ipv6_address_mode": None, "ipv6_ra_mode": None,
            "subnetpool_id": None, "tags": [],
        }
        self.ports = {}
        self.next_ip = 10


def matches(item, query):
    """Neutron's list filters: each key must have one of the given values."""
    for key, values in query.items():
        if key in ("fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"):
            continue
        have = item.get(key)
        if isinstance(have, bool):
            if str(have).lower() not in [v.lower() for v in values]:
                return False
        elif str(have) not in values:
            return False
    return True


def project(item, query):
    fields = query.get("fields")
    return {k: v for k, v in item.items() if k in fields} if fields else item


def make_handler(state, log):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, code, body=None):
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            log.write(f"{time.time():.3f} {self.command} {self.path} {code}\n")
            log.flush()

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}") if n else {}

        def route(self):
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            if parts and parts[0] == "v2.0":
                parts = parts[1:]
            if parts:
                parts[-1] = parts[-1].removesuffix(".json")
            return parts, parse_qs(url.query)

        def not_found(self, what):
            self.send(404, {"NeutronError": {"type": "NotFound", "message": f"{what} not found", "detail": ""}})

        def unsupported(self):
            self.send(400, {"NeutronError": {"type": "BadRequest", "message": "not supported by the stub",
                                             "detail": ""}})

        def do_GET(self):
            parts, query = self.route()
            if not parts:
                return self.send(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
                    {"rel": "self", "href": f"http://127.0.0.1:{state.port}/v2.0/"}]}]})
            with state.lock:
                collections = {"networks": ("network", [state.network]), "subnets": ("subnet", [state.subnet]),
                               "ports": ("port", list(state.ports.values()))}
                if parts[0] in collections:
                    one, items = collections[parts[0]]
                    if len(parts) == 2:
                        found = [i for i in items if i["id"] == parts[1]]
                        return self.send(200, {one: project(found[0], query)}) if found else self.not_found(one)
                    return self.send(200, {parts[0]: [project(i, query) for i in items if matches(i, query)]})
                if parts[0] == "quotas" and len(parts) >= 2:
                    return self.send(200, {"quota": {"network": -1, "subnet": -1, "port": -1, "router": -1,
                                                     "floatingip": -1, "security_group": -1,
                                                     "security_group_rule": -1}})
                if len(parts) == 1:
                    # security-groups, floatingips, extensions, ...:
                    # the stub has none of them.
                    return self.send(200, {parts[0].replace("-", "_"): []})
            self.not_found("resource")

        def do_POST(self):
            parts, _ = self.route()
            if parts == ["ports"]:
                req = self.body().get("port", {})
                with state.lock:
                    if req.get("network_id") != state.network["id"]:
                        return self.not_found("network")
                    pid = str(uuid.uuid4())
                    port = {"id": pid, "name": "", "status": "DOWN", "admin_state_up": True,
                            "mac_address": "fa:16:3e:%02x:%02x:%02x" % tuple(uuid.UUID(pid).bytes[:3]),
                            "fixed_ips": [], "security_groups": [], "device_id": "", "device_owner": "",
                            "tenant_id": "", "project_id": "", "binding:host_id": "", "binding:vif_type": "unbound",
                            "binding:vnic_type": "normal", "binding:profile": {}, "binding:vif_details": {},
                            "port_security_enabled": False, "tags": [], "allowed_address_pairs": [],
                            "extra_dhcp_opts": [], "dns_name": ""}
                    port.update(req)
                    if not req.get("fixed_ips"):
                        port["fixed_ips"] = [{"subnet_id": state.subnet["id"],
                                              "ip_address": f"10.254.0.{state.next_ip}"}]
                        state.next_ip = 10 + (state.next_ip - 9) % 240
                    port["project_id"] = port["tenant_id"] = req.get("tenant_id", req.get("project_id", ""))
                    state.ports[pid] = port
                    return self.send(201, {"port": port})
            self.unsupported()

        def do_PUT(self):
            parts, _ = self.route()
            if len(parts) == 2 and parts[0] == "ports":
                req = self.body().get("port", {})
                with state.lock:
                    port = state.ports.get(parts[1])
                    if not port:
                        return self.not_found("port")
                    port.update(req)
                    return self.send(200, {"port": port})
            self.unsupported()

        def do_DELETE(self):
            parts, _ = self.route()
            if len(parts) == 2 and parts[0] == "ports":
                with state.lock:
                    if state.ports.pop(parts[1], None) is None:
                        return self.not_found("port")
            self.send(204)

    return Handler


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    port, network_id, network_name, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    state = State(port, network_id, network_name)
    with open(log_path, "a") as log:
        server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state, log))
        server.daemon_threads = True
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
