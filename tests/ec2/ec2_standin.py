"""A local EC2 endpoint as strict as AWS where the EC2 backend is concerned,
for tests only (no AWS is reachable from the test machines).

Every request is checked against the EC2 service model that ships with
Debian's python3-botocore: the action must exist, every parameter must be
one of its input shape's (by wire name, lists as Name.N), with the right
type and, for enums, a known value; botocore's ParamValidator then checks
required members and ranges. Each request's AWS SigV4 signature is verified
by signing it again with botocore's own signer and the secret the test
configured. Bad requests get the error AWS would send (UnknownParameter,
InvalidParameterValue, MissingParameter, AuthFailure, ...).

Instances go pending -> running -> shutting-down -> terminated with delays;
a new instance is InvalidInstanceID.NotFound on its first DescribeInstances
by id (EC2's eventual consistency); ClientToken is honoured (the same token
and parameters give the same instance, other parameters
IdempotentParameterMismatch). A test can throttle the next requests, refuse
spot capacity, lose the answer of a RunInstances after launching, and
terminate an instance under its worker.

An instance that reaches running starts a real `buildyard-workerd --latent`
whose --metadata-url points at this server's IMDSv2 for that instance
(/meta/ID/latest/api/token, /meta/ID/latest/user-data), so the worker reads
the user data RunInstances carried; /meta/ID/openstack/latest/user_data
serves it as OpenStack's metadata service would. The server also offers the instance
role credentials of IMDSv2 (/latest/...) for latentd itself.
"""

import base64
import hashlib
import http.server
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from xml.sax.saxutils import escape

from ec2_model import XMLNS, ApiError, parse_request, verify_signature

# --- Instances ----------------------------------------------------------------

class Instance:
    def __init__(self, standin, params, market):
        self.id = "i-" + secrets.token_hex(9)[:17]
        self.params = params
        self.market = market
        self.state = "pending"
        self.state_reason = ""
        self.launched = time.monotonic()
        self.described = False
        self.tags = {}
        self.volume_tags = {}
        for spec in params.get("TagSpecifications", []):
            target = self.tags if spec["ResourceType"] == "instance" else self.volume_tags
            target.update({t["Key"]: t["Value"] for t in spec.get("Tags", [])})
        self.user_data = base64.b64decode(params.get("UserData", "")) if params.get("UserData") else b""
        self.worker = None
        self.worker_log = None


class Ec2StandIn:
    """The server and its state. Start with start(), stop with stop()."""

    def __init__(self, dir, keys, region="us-east-1", worker_argv=None, worker_env=None):
        self.dir = dir
        self.keys = dict(keys)  # key id -> secret
        self.region = region
        self.worker_argv = worker_argv  # None: instances run no worker
        self.worker_env = worker_env or {}
        self.lock = threading.RLock()
        self.instances = {}
        self.tokens = {}  # ClientToken -> (digest of params, instance id)
        self.requests = []  # (action, params) of every valid request
        self.rejected = []  # (code, message) of every refused request
        self.throttle_next = 0
        self.refuse_spot = None  # an error code, e.g. InsufficientInstanceCapacity
        self.lose_next_run_answer = False
        self.run_delay = 0.3  # pending -> running
        self.terminate_delay = 0.3  # shutting-down -> terminated
        self.imds_tokens = set()
        self.role_credentials = None  # (key id, secret, session token, expiration) for /latest/...
        self.role_fetches = 0
        self.role_signed = 0  # requests signed with the role's credentials
        self.server = None
        self.ticker = None
        self.stopping = threading.Event()

    # --- control ---------------------------------------------------------------

    def start(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                standin.handle_api(self)

            def do_PUT(self):
                standin.handle_metadata(self, "PUT")

            def do_GET(self):
                standin.handle_metadata(self, "GET")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.ticker = threading.Thread(target=self.tick_loop, daemon=True)
        self.ticker.start()
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def stop(self):
        self.stopping.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        with self.lock:
            for i in self.instances.values():
                self.stop_worker(i)

    def set_role(self, lifetime):
        """Instance-role credentials for latentd that expire in `lifetime` s."""
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime))
        self.role_credentials = ("ASIAROLE" + secrets.token_hex(4).upper(), "role-" + secrets.token_hex(16),
                                 "session-" + secrets.token_hex(24), expiration)
        return self.role_credentials

    def launch_untracked(self, tags, state="running"):
        """An instance made behind the backend's back (a leak, another
        master's, an untagged one)."""
        with self.lock:
            i = Instance(self, {"ImageId": "ami-0123456789abcdef0", "InstanceType": "t3.micro"}, "on-demand")
            i.tags = dict(tags)
            i.state = state
            i.described = True
            self.instances[i.id] = i
            return i.id

    def terminate_behind_back(self, instance_id):
        """As a spot interruption or a console click would."""
        with self.lock:
            i = self.instances[instance_id]
            i.state, i.state_reason = "shutting-down", "Server.SpotInstanceTermination: terminated by the test"
            i.ended = time.monotonic()
            self.stop_worker(i)

    def live(self, **tags):
        with self.lock:
            return [i for i in self.instances.values() if i.state not in ("terminated",) and
                    all(i.tags.get(k) == v for k, v in tags.items())]

    def actions(self, name):
        with self.lock:
            return [p for a, p in self.requests if a == name]

    # --- state transitions -----------------------------------------------------

    def tick_loop(self):
        while not self.stopping.wait(0.05):
            with self.lock:
                now = time.monotonic()
                for i in self.instances.values():
                    if i.state == "pending" and now - i.launched >= self.run_delay:
                        i.state = "running"
                        self.start_worker(i)
                    elif i.state == "shutting-down" and now - getattr(i, "ended", now) >= self.terminate_delay:
                        i.state = "terminated"
                    if i.worker and i.worker.poll() is not None and i.state == "running":
                        # The worker process is the machine: when it ends, so does the instance.
                        i.state, i.state_reason = "terminated", "Client.InstanceInitiatedShutdown"

    def start_worker(self, i):
        if not self.worker_argv:
            return
        basedir = os.path.join(self.dir, "instances", i.id)
        os.makedirs(basedir, exist_ok=True)
        i.worker_log = os.path.join(self.dir, f"worker-{i.id}.log")
        env = dict(os.environ)
        for k in ("BUILDYARD_WORKER_NAME", "BUILDYARD_MASTER", "BUILDYARD_TOKEN", "CREDENTIALS_DIRECTORY"):
            env.pop(k, None)
        env.update(self.worker_env)
        with open(i.worker_log, "wb") as log:
            i.worker = subprocess.Popen(
                [*self.worker_argv, "--latent", "--basedir", basedir, "--metadata-url", f"{self.url}meta/{i.id}"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def stop_worker(self, i):
        if i.worker and i.worker.poll() is None:
            os.killpg(i.worker.pid, signal.SIGKILL)
            i.worker.wait(10)

    # --- the API -------------------------------------------------------------

    def send(self, handler, status, text, content_type="text/xml;charset=UTF-8"):
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def handle_api(self, handler):
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length)
        request_id = secrets.token_hex(16)
        try:
            keys = dict(self.keys)
            if self.role_credentials:
                keys[self.role_credentials[0]] = self.role_credentials[1]
            verify_signature("POST", handler.headers, handler.path, body, self.region, keys)
            if self.role_credentials and self.role_credentials[0] in handler.headers.get("Authorization", ""):
                # Temporary credentials are good only with their session token.
                if handler.headers.get("X-Amz-Security-Token") != self.role_credentials[2]:
                    raise ApiError("AuthFailure", "AWS was not able to validate the provided access credentials",
                                   401)
                with self.lock:
                    self.role_signed += 1
            if not handler.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                raise ApiError("InvalidParameterValue", "the body must be a form")
            action, params = parse_request(body.decode())
            with self.lock:
                if self.throttle_next > 0:
                    self.throttle_next -= 1
                    raise ApiError("RequestLimitExceeded", "Request limit exceeded.", 503)
                # Valid requests, including those refused for what they ask
                # (no capacity, a conflict): what the client sent.
                self.requests.append((action, params))
                xml = getattr(self, "do_" + action, self.unsupported)(params)
            if xml is None:  # the answer is lost
                handler.close_connection = True
                self.send(handler, 500, error_xml("InternalError", "An internal error has occurred", request_id))
                return
            self.send(handler, 200, f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{XMLNS}">'
                                      f"<requestId>{request_id}</requestId>{xml}</{action}Response>")
        except ApiError as e:
            with self.lock:
                self.rejected.append((e.code, e.message))
            self.send(handler, e.status, error_xml(e.code, e.message, request_id))

    def unsupported(self, params):
        raise ApiError("UnsupportedOperation", "the stand-in does not implement this action")

    def do_RunInstances(self, p):
        if p["MinCount"] != 1 or p["MaxCount"] != 1:
            raise ApiError("InvalidParameterValue", "the backend launches one instance at a time")
        market = p.get("InstanceMarketOptions", {}).get("MarketType", "on-demand")
        token = p.get("ClientToken")
        digest = hashlib.sha256(json.dumps(p, sort_keys=True, default=str).encode()).hexdigest()
        if token in self.tokens:
            known, instance_id = self.tokens[token]
            if known != digest:
                raise ApiError("IdempotentParameterMismatch", "the ClientToken was used with other parameters")
            return instances_xml([self.instances[instance_id]], "instancesSet")
        if market == "spot" and self.refuse_spot:
            raise ApiError(self.refuse_spot, "There is no Spot capacity available that matches your request.")
        if p["ImageId"] != "ami-0123456789abcdef0":
            raise ApiError("InvalidAMIID.NotFound", f"The image id '[{p['ImageId']}]' does not exist")
        i = Instance(self, p, market)
        self.instances[i.id] = i
        if token:
            self.tokens[token] = (digest, i.id)
        if self.lose_next_run_answer:
            self.lose_next_run_answer = False
            return None
        return instances_xml([i], "instancesSet")

    def do_DescribeInstances(self, p):
        ids = p.get("InstanceIds")
        if ids and "MaxResults" in p:
            raise ApiError("InvalidParameterCombination", "MaxResults cannot be used with InstanceIds")
        if ids:
            for instance_id in ids:
                i = self.instances.get(instance_id)
                if not i or not i.described:
                    if i:
                        i.described = True
                    raise ApiError("InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist")
            found = [self.instances[x] for x in ids]
        else:
            found = list(self.instances.values())
        for f in p.get("Filters", []):
            name, values = f["Name"], f.get("Values", [])
            if name.startswith("tag:"):
                found = [i for i in found if i.tags.get(name[4:]) in values]
            elif name == "instance-state-name":
                found = [i for i in found if i.state in values]
            elif name == "instance-id":
                found = [i for i in found if i.id in values]
            else:
                raise ApiError("InvalidParameterValue", f"The filter '{name}' is invalid")
        if "MaxResults" in p and not 5 <= p["MaxResults"] <= 1000:
            raise ApiError("InvalidParameterValue", "MaxResults must be from 5 to 1000")
        reservations = "".join(f"<item><reservationId>r-{i.id[2:]}</reservationId><ownerId>123456789012</ownerId>"
                               f"{instances_xml([i], 'instancesSet')}</item>" for i in found)
        return f"<reservationSet>{reservations}</reservationSet>"

    def do_TerminateInstances(self, p):
        items = []
        for instance_id in p["InstanceIds"]:
            i = self.instances.get(instance_id)
            if not i:
                raise ApiError("InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist")
            previous = i.state
            if i.state not in ("shutting-down", "terminated"):
                i.state, i.state_reason = "shutting-down", "Client.UserInitiatedShutdown"
                i.ended = time.monotonic()
                self.stop_worker(i)
            items.append(f"<item><instanceId>{i.id}</instanceId><currentState><code>32</code><name>{i.state}</name>"
                         f"</currentState><previousState><code>16</code><name>{previous}</name></previousState></item>")
        return f"<instancesSet>{''.join(items)}</instancesSet>"

    def do_DescribeImages(self, p):
        images = [x for x in p.get("ImageIds", []) if x == "ami-0123456789abcdef0"]
        return "<imagesSet>" + "".join(f"<item><imageId>{x}</imageId><rootDeviceName>/dev/xvda</rootDeviceName>"
                                       "</item>" for x in images) + "</imagesSet>"

    # --- IMDSv2 ------------------------------------------------------------

    def handle_metadata(self, handler, method):
        path = handler.path
        length = int(handler.headers.get("Content-Length", "0") or 0)
        if length:
            handler.rfile.read(length)
        instance = None
        if path.startswith("/meta/"):
            instance_id, _, rest = path[len("/meta/"):].partition("/")
            instance = self.instances.get(instance_id)
            path = "/" + rest
            if not instance:
                return self.plain(handler, 404, "")
        if path == "/openstack/latest/user_data" and instance:
            # OpenStack's metadata service asks for no session token.
            if method != "GET":
                return self.plain(handler, 405, "")
            return self.plain(handler, 200 if instance.user_data else 404, instance.user_data.decode())
        if path == "/latest/api/token":
            if method != "PUT" or not handler.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.plain(handler, 400 if method == "PUT" else 405, "")
            token = secrets.token_urlsafe(32)
            with self.lock:
                self.imds_tokens.add(token)
            return self.plain(handler, 200, token)
        if method != "GET" or handler.headers.get("X-aws-ec2-metadata-token") not in self.imds_tokens:
            return self.plain(handler, 401, "")
        if path == "/latest/user-data" and instance:
            return self.plain(handler, 200 if instance.user_data else 404, instance.user_data.decode())
        creds = "/latest/meta-data/iam/security-credentials/"
        if path.startswith(creds) and self.role_credentials:
            if path == creds:
                return self.plain(handler, 200, "buildyard-latent")
            if path == creds + "buildyard-latent":
                with self.lock:
                    self.role_fetches += 1
                key_id, secret, token, expiration = self.role_credentials
                return self.plain(handler, 200, json.dumps({
                    "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": key_id, "SecretAccessKey": secret,
                    "Token": token, "Expiration": expiration}))
        return self.plain(handler, 404, "")

    def plain(self, handler, status, text):
        self.send(handler, status, text, "text/plain")


def error_xml(code, message, request_id):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")


def instances_xml(instances, element):
    items = []
    for i in instances:
        tags = "".join(f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>" for k, v in i.tags.items())
        reason = f"<stateReason><code>{escape(i.state_reason)}</code><message>{escape(i.state_reason)}</message>" \
                 f"</stateReason>" if i.state_reason else ""
        lifecycle = "<instanceLifecycle>spot</instanceLifecycle>" if i.market == "spot" else ""
        items.append(f"<item><instanceId>{i.id}</instanceId><imageId>{escape(i.params.get('ImageId', ''))}</imageId>"
                     f"<instanceState><code>0</code><name>{i.state}</name></instanceState>"
                     f"<instanceType>{escape(i.params.get('InstanceType', ''))}</instanceType>{lifecycle}{reason}"
                     f"<tagSet>{tags}</tagSet></item>")
    return f"<{element}>{''.join(items)}</{element}>"
