"""Plain OpenStack REST for the tests (urllib and json, no client library).

A Session authenticates to Keystone v3 with a password, keeps its token
and service catalog, and sends requests to a service by its catalog type
("compute", "image", "placement", "identity", "network"), with an optional
Nova microversion. Requests go to 127.0.0.1 only, so no proxy applies.
"""

import json
import time
import urllib.error
import urllib.request

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HttpError(Exception):
    def __init__(self, method, url, status, body):
        super().__init__(f"{method} {url}: HTTP {status}: {body[:500]!r}")
        self.status = status
        self.body = body


def http(method, url, body=None, headers=None, timeout=60, raw=None):
    """One request. Returns (status, headers, decoded JSON or None). Raises
    HttpError on 4xx/5xx."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with _NO_PROXY.open(req, timeout=timeout) as r:
            text = r.read()
            return r.status, r.headers, (json.loads(text) if text.strip() else None)
    except urllib.error.HTTPError as e:
        raise HttpError(method, url, e.code, e.read().decode(errors="replace")) from None


def password_auth(user, password, project, user_domain="Default", project_domain="Default"):
    return {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": user_domain}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": project_domain}}}}


class Session:
    def __init__(self, auth_url, auth, region="RegionOne", interface="public"):
        self.auth_url = auth_url.rstrip("/")
        self.auth = auth
        self.region = region
        self.interface = interface
        self._token = None
        self._expires = 0
        self.catalog = []
        self.token_body = None

    def token(self):
        if not self._token or time.time() > self._expires - 5:
            _, headers, body = http("POST", self.auth_url + "/auth/tokens", {"auth": self.auth})
            self._token = headers["X-Subject-Token"]
            self.token_body = body["token"]
            self.catalog = body["token"].get("catalog", [])
            expires = body["token"]["expires_at"].replace("Z", "+00:00")
            from datetime import datetime
            self._expires = datetime.fromisoformat(expires).timestamp()
        return self._token

    def forget_token(self):
        """The next request logs in again (after the token was revoked)."""
        self._token = None

    def endpoint(self, service_type):
        self.token()
        for svc in self.catalog:
            if svc["type"] == service_type:
                for ep in svc["endpoints"]:
                    if ep["interface"] == self.interface and ep.get("region_id", ep.get("region")) == self.region:
                        return ep["url"].rstrip("/")
        raise KeyError(f"no {self.interface} {service_type} endpoint in region {self.region}")

    def request(self, service_type, method, path, body=None, microversion=None, headers=None, raw=None,
                timeout=60):
        """Returns (status, decoded JSON or None); raises HttpError.
        A service's SQLite database may be locked by another service under
        load: Nova then answers 500 with sqlalchemy's OperationalError, its
        transaction rolled back. Such an answer is asked again (five times
        at most), so that the tests' own calls do not fail on the
        fixture's choice of database."""
        h = {"X-Auth-Token": self.token(), **(headers or {})}
        if microversion:
            h["OpenStack-API-Version"] = f"compute {microversion}"
        for attempt in range(5):
            try:
                status, _, data = http(method, self.endpoint(service_type) + path, body, h, timeout=timeout,
                                       raw=raw)
                return status, data
            except HttpError as e:
                if e.status != 500 or "OperationalError" not in e.body or attempt == 4:
                    raise
                time.sleep(1)

    def get(self, service_type, path, **kw):
        return self.request(service_type, "GET", path, **kw)[1]

    def post(self, service_type, path, body, **kw):
        return self.request(service_type, "POST", path, body, **kw)[1]
