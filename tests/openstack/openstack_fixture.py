"""A real, small OpenStack for the tests, from Debian 12's packages.

OpenStack(...).start() brings up in a scratch directory, without systemd and
on 127.0.0.1 only: RabbitMQ (with its own epmd), Keystone and Placement
(under uwsgi), Glance (file store), Nova's API (uwsgi), conductor,
scheduler and compute (the fake virt driver by default, or libvirt with
TCG), all on SQLite, and a Neutron stub (neutron_stub.py). It waits until
the compute host is discovered, then creates what the backend's tests use:

  - project `buildyard`, user `buildyard-latent` with a password and the
    role `buildyard-latent` (see ROLE below: not admin, not member);
  - flavors `by.small` (1 vCPU, 128 MB, 1 GB) and `by.huge` (larger than
    the host: scheduling fails with NoValidHost);
  - a public image `by-image` in Glance;
  - a network `by-net`, answered by the Neutron stub.

stop() ends every process by the PID it started (process group, TERM then
KILL), and removes the scratch directory, sockets and databases with it.
It is safe to call twice; start() registers it with atexit, and a failed
start() stops what it started. Should the test's process die without
stop() (a CTest timeout kills it), reaper.py, which waits on a pipe from
it, stops the same process groups and removes the directory.

Ports: a block of consecutive ports below the ephemeral range, held for
the fixture's life by an abstract socket named after the block, so two
fixtures never collide, and each port claimed as tests/lib/free_port.py
claims the ports it hands out, so no test running beside it is given one.

ROLE. The backend's least privilege, in policy terms: Keystone role
`buildyard-latent` on project `buildyard`, which implies Keystone's
`reader` (reading servers, flavors and images: Nova's project_reader_api,
Glance's reader rules), and, in Nova's policy file, the rules that change
servers granted to that role in its own project:
os_compute_api:servers:create, servers:create:attach_network,
servers:create:attach_volume and servers:delete ("role:buildyard-latent and
project_id:%(project_id)s"). Nova and Glance run with
enforce_new_defaults = True, so the deprecated "any role in the project"
rules do not apply. Glance's download_image (which a compute host that
fetches the image, such as libvirt's, does with the user's token) is
granted to the role for public images and its project's. On a stock
cloud the same rights come with Keystone's `member` role on the project.
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from openstack_admin import AdminCalls  # noqa: E402
from openstack_configs import ConfigFiles  # noqa: E402
# The names are re-exported: the tests and bench/latent-openstack take them from here.
from openstack_names import (ADMIN_PASSWORD, COMPUTE_HOST, HUGE, IMAGE, NETWORK,  # noqa: E402,F401
                             NOVA_MICROVERSION, PORT_BLOCK, PORT_FIRST, PORT_LAST, PORT_NAMES, PROGRAMS,
                             PROJECT, PYTHON, REGION, SMALL, USER)
from openstack_ports import release_ports, reserve_ports  # noqa: E402
from openstack_rest import HttpError, Session, http, password_auth  # noqa: E402
from openstack_services import Services  # noqa: E402


def missing_programs():
    return [p for p in PROGRAMS if not shutil.which(p)]


def can_run():
    """None if the fixture can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root (RabbitMQ runs as its user)"
    missing = missing_programs()
    if missing:
        return "missing " + ", ".join(missing) + " (bash .ci/install-deps)"
    return None


class OpenStack(ConfigFiles, Services, AdminCalls):
    """See the module's docstring. Attributes after start():

    auth_url, region, project, user, password, user_domain, project_domain:
        the backend user's Keystone v3 password credentials;
    ports: {service: port}; dir: the scratch directory (logs in dir/log);
    admin: a Session as Keystone's admin (project admin);
    user: a Session as the backend user;
    flavors: {name: id}; image_id; network_id; bringup_seconds.
    """

    def __init__(self, token_expiration=3600, compute_driver="fake.MediumFakeDriver", nova_conf=None):
        """token_expiration: Keystone's token lifetime in seconds.
        compute_driver: Nova's [DEFAULT] compute_driver ("libvirt.LibvirtDriver"
        for a real TCG guest: needs nova-compute and a running libvirtd).
        nova_conf: {section: {key: value}} merged into nova.conf."""
        self.token_expiration = int(token_expiration)
        self.compute_driver = compute_driver
        self.nova_conf_extra = nova_conf or {}
        self.dir = None
        self.procs = {}  # name -> Popen (each the leader of its own process group)
        self._ports_lock = None
        self._reaper = None
        self._reaper_pipe = None
        self._stopped = True
        self.region = REGION
        self.project = PROJECT
        self.user = USER
        self.password = "latent-" + uuid.uuid4().hex[:12]
        self.user_domain = "Default"
        self.project_domain = "Default"
        self.network_id = str(uuid.uuid4())
        self.instance_prefix = "buildyard-os-" + uuid.uuid4().hex[:8]
        self.flavors = {}
        self.image_id = None
        self.bringup_seconds = None
        self.timings = {}
        self.commands = []  # (set-up command, seconds)

    # ---------------------------------------------------------------- start

    def start(self):
        why = can_run()
        if why:
            raise RuntimeError("OpenStack fixture: " + why)
        t0 = time.monotonic()
        self._stopped = False
        atexit.register(self.stop)
        try:
            self._ports_lock, self.ports = reserve_ports()
            self.dir = tempfile.mkdtemp(prefix="buildyard-openstack-")
            os.chmod(self.dir, 0o755)  # RabbitMQ's user reads its files here
            self._start_reaper()
            self.auth_url = f"http://127.0.0.1:{self.ports['keystone']}/v3"
            for d in ("log", "etc/keystone", "etc/placement", "etc/glance", "etc/nova/policy.d",
                      "etc/glance/policy.d", "etc/placement/policy.d", "etc/keystone/policy.d",
                      "keystone", "glance/images", "glance/lock", "nova/instances", "nova/lock"):
                os.makedirs(self.path(d), exist_ok=True)
            self._write_configs()
            self._run_parallel([self._start_rabbit, self._start_keystone, self._sync_databases])
            self._step("parallel: rabbit, keystone, db syncs", t0)
            self._start_services()
            self._setup_keystone()
            self._wait_http("placement", f"http://127.0.0.1:{self.ports['placement']}/")
            self._wait_http("glance", f"http://127.0.0.1:{self.ports['glance']}/")
            self._wait_http("nova-api", f"http://127.0.0.1:{self.ports['nova']}/")
            self._wait_http("neutron-stub", f"http://127.0.0.1:{self.ports['neutron']}/")
            self._step("services answer", t0)
            self.admin = Session(self.auth_url, password_auth("admin", ADMIN_PASSWORD, "admin"), REGION)
            self.user_session = Session(self.auth_url, self.password_auth(), REGION)
            self._create_flavors_and_images()
            self._wait_compute_discovered()
            self._step("compute discovered", t0)
        except BaseException:
            self._dump_logs()
            self.stop()
            raise
        self.bringup_seconds = time.monotonic() - t0
        count, mib = self.rss_mib()
        print(f"OpenStack fixture up in {self.bringup_seconds:.1f} s, {count} processes, {mib:.0f} MiB RSS "
              f"({self.dir}, ports "
              f"{min(self.ports.values())}-{max(self.ports.values())}); steps: "
              + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()), file=sys.stderr, flush=True)
        return self

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _step(self, name, t0):
        self.timings[name] = time.monotonic() - t0

    def _run_parallel(self, functions):
        errors = []

        def run(f):
            try:
                f()
            except BaseException as e:  # noqa: B902 - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(f,)) for f in functions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _run(self, name, argv, env=None, timeout=300):
        """Runs a set-up command to completion, its output in log/NAME.out."""
        t0 = time.monotonic()
        with open(self.path("log", name + ".out"), "ab") as out:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})}, timeout=timeout, cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError(f"{argv} exited {r.returncode}; see {self.path('log', name + '.out')}:\n"
                               + self._tail(self.path("log", name + ".out")))
        self.commands.append((" ".join(a for a in argv if not a.startswith("/"))[:60], time.monotonic() - t0))

    def _spawn(self, name, argv, env=None, user=None):
        """Starts a long-running process in its own process group (its PID
        is the group's ID), all three standard streams redirected."""
        out = open(self.path("log", name + ".out"), "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, **(env or {})}, cwd=self.dir, start_new_session=True,
                                 user=user)
        finally:
            out.close()
        self.procs[name] = p
        with open(self.path("run", "pgids"), "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def _start_reaper(self):
        """reaper.py stops every process group we start if this process
        dies without stop() (SIGKILL from a CTest timeout included): it
        waits for the end of a pipe whose write end only we hold."""
        os.makedirs(self.path("run"))
        r, self._reaper_pipe = os.pipe()
        try:
            self._reaper = subprocess.Popen([PYTHON, "-P", os.path.join(HERE, "reaper.py"), self.dir], stdin=r,
                                            stdout=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(r)

    def _check_alive(self, name):
        p = self.procs.get(name)
        if p and p.poll() is not None:
            raise RuntimeError(f"{name} exited {p.returncode}; log/{name}.out says:\n"
                               + self._tail(self.path("log", name + ".out")))

    def _wait_http(self, name, url, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            try:
                http("GET", url, timeout=5)
                return
            except HttpError:
                return  # it answers (401 or 300 are fine)
            except OSError:
                pass
            for proc in self.procs:
                self._check_alive(proc)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer at {url} within {timeout} s")
            time.sleep(0.2)

    @staticmethod
    def _tail(path, n=30):
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def _dump_logs(self):
        if not self.dir or not os.path.isdir(self.path("log")):
            return
        for name in sorted(os.listdir(self.path("log"))):
            print(f"--- {name} (last lines)\n{self._tail(self.path('log', name), 15)}", file=sys.stderr)

    # ------------------------------------------------------------- configs

    # ------------------------------------------------------------ stop

    def stop(self):
        """Stops every process by its PID (its process group: uwsgi's and
        rabbit's children too), epmd last, then removes the scratch
        directory. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        order = [n for n in self.procs if n not in ("epmd",)] + [n for n in self.procs if n == "epmd"]
        # RabbitMQ's beam leaves on TERM to its group; give everyone TERM at
        # once, then wait, then KILL what is left.
        for name in order[:-1] if "epmd" in self.procs else order:
            self._signal(self.procs[name], signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name in order:
            p = self.procs[name]
            if name == "epmd":
                self._signal(p, signal.SIGTERM)
            left = max(0.1, deadline - time.monotonic())
            try:
                p.wait(timeout=left)
            except subprocess.TimeoutExpired:
                pass
            self._signal(p, signal.SIGKILL)  # the group's stragglers, if any
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"OpenStack fixture: {name} ({p.pid}) did not die", file=sys.stderr)
        self.procs = {}
        if self.dir and os.environ.get("BUILDYARD_KEEP_OPENSTACK") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._reaper_pipe is not None:
            os.close(self._reaper_pipe)  # the reaper finds nothing left, and ends
            self._reaper_pipe = None
            try:
                self._reaper.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"OpenStack fixture: reaper.py ({self._reaper.pid}) did not end", file=sys.stderr)
        if self._ports_lock is not None:
            release_ports(self.ports.values())
            self._ports_lock.close()
            self._ports_lock = None
        try:
            atexit.unregister(self.stop)
        except Exception:  # noqa: BLE001 - interpreter shutting down
            pass

    @staticmethod
    def _signal(p, sig):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def processes(self):
        """{name: PID} of what the fixture runs (each PID is also the ID of
        the process group that holds that service's children)."""
        return {n: p.pid for n, p in self.procs.items()}

    def rss_mib(self):
        """(number of processes, their total resident memory in MiB): every
        process in the fixture's process groups."""
        groups = {p.pid for p in self.procs.values()}
        count = kib = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    pgid = int(f.read().rsplit(")", 1)[1].split()[2])
                if pgid not in groups:
                    continue
                with open(f"/proc/{entry}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            kib += int(line.split()[1])
                            count += 1
            except (OSError, IndexError, ValueError):
                pass
        return count, kib / 1024


_shared = None


def shared(**kwargs):
    """One fixture per test module: call from setUpModule; it is stopped by
    tearDownModule (stop_shared) or, failing that, at exit."""
    global _shared
    if _shared is None:
        _shared = OpenStack(**kwargs).start()
    return _shared


def shared_for_module(**kwargs):
    """setUpModule's part: the module's fixture (shared()), or SkipTest
    saying why it cannot run here (which fails the test under CI)."""
    why = can_run()
    if why:
        raise unittest.SkipTest(why)
    return shared(**kwargs)


def stop_shared():
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
