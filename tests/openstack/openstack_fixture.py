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

Ports: a block of consecutive ports below the ephemeral range, held by a
lock file for the fixture's life, so two fixtures (or two test modules)
never collide.

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
import base64
import os
import pwd
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from openstack_rest import HttpError, Session, http, password_auth  # noqa: E402

PYTHON = "/usr/bin/python3"
REGION = "RegionOne"
ADMIN_PASSWORD = "admin-secret"
SERVICE_PASSWORD = ADMIN_PASSWORD  # the services authenticate as admin
PROJECT = "buildyard"
USER = "buildyard-latent"
ROLE = "buildyard-latent"
NETWORK = "by-net"
IMAGE = "by-image"
SMALL = "by.small"
HUGE = "by.huge"
COMPUTE_HOST = "buildyard-compute"
NOVA_MICROVERSION = "2.79"

# The packages the fixture runs (what .ci/install-deps installs for it).
PROGRAMS = ["keystone-manage", "glance-manage", "nova-manage", "placement-manage", "glance-api",
            "nova-conductor", "nova-scheduler", "uwsgi", "epmd", "/usr/lib/rabbitmq/bin/rabbitmq-server",
            "/usr/bin/keystone-wsgi-public", "/usr/bin/placement-api", "/usr/bin/nova-api-wsgi"]

PORT_NAMES = ["keystone", "placement", "glance", "nova", "neutron", "amqp", "dist", "epmd"]
PORT_BLOCK = 10
PORT_FIRST, PORT_LAST = 20000, 31999  # below Linux's ephemeral range (32768-)


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


def _free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _reserve_ports():
    """A block of free ports, held for the fixture's life by a bound
    abstract Unix socket named after the block (no file to leave behind;
    the kernel releases it when this process ends, however it ends).
    Returns (socket, {name: port})."""
    blocks = list(range(PORT_FIRST, PORT_LAST - PORT_BLOCK, PORT_BLOCK))
    random.shuffle(blocks)
    for base in blocks[:200]:
        lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lock.bind(f"\0buildyard-openstack-ports-{base}")
        except OSError:
            lock.close()
            continue
        ports = {name: base + i for i, name in enumerate(PORT_NAMES)}
        if all(_free(p) for p in ports.values()):
            return lock, ports
        lock.close()
    raise RuntimeError("no free block of ports for the OpenStack fixture")


def _ini(sections):
    out = []
    for name, items in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{k} = {v}" for k, v in items.items())
        out.append("")
    return "\n".join(out)


class OpenStack:
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
            self._ports_lock, self.ports = _reserve_ports()
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

    def _write(self, rel, text):
        with open(self.path(rel), "w") as f:
            f.write(text)

    def _authtoken(self):
        return {"www_authenticate_uri": f"http://127.0.0.1:{self.ports['keystone']}/",
                "auth_url": f"http://127.0.0.1:{self.ports['keystone']}/", "auth_type": "password",
                "project_domain_name": "Default", "user_domain_name": "Default", "project_name": "admin",
                "username": "admin", "password": SERVICE_PASSWORD, "region_name": REGION}

    def _service_auth(self):
        return {"auth_type": "password", "auth_url": self.auth_url, "project_name": "admin",
                "project_domain_name": "Default", "username": "admin", "user_domain_name": "Default",
                "password": SERVICE_PASSWORD, "region_name": REGION}

    def _uwsgi(self, name, port, wsgi_file, env, processes=1):
        return _ini({"uwsgi": {
            "plugins": "python3", "http-socket": f"127.0.0.1:{port}", "master": "true",
            "processes": processes, "threads": 1,  # threads > 1: SQLite "database is locked"
            "lazy-apps": "true", "enable-threads": "true", "die-on-term": "true", "buffer-size": 65535,
            "add-header": "Connection: close",  # else clients hang on keep-alive
            "wsgi-file": wsgi_file, "env": env, "need-app": "true",
        }})

    def _write_configs(self):
        d, p = self.dir, self.ports
        policy = {"enforce_new_defaults": "True", "enforce_scope": "False"}
        self._write("etc/keystone/keystone.conf", _ini({
            "DEFAULT": {"log_dir": f"{d}/log", "log_file": "keystone.log"},
            "database": {"connection": self._db("keystone")},
            "identity": {"password_hash_rounds": 4},  # bcrypt's least: each login costs ms, not 0.3 s
            "token": {"expiration": self.token_expiration},
            "fernet_tokens": {"key_repository": f"{d}/keystone/fernet-keys"},
            "credential": {"key_repository": f"{d}/keystone/credential-keys"},
            "oslo_policy": {"policy_dirs": f"{d}/etc/keystone/policy.d"},
        }))
        self._write("etc/keystone/uwsgi.ini", self._uwsgi(
            "keystone", p["keystone"], "/usr/bin/keystone-wsgi-public", f"OS_KEYSTONE_CONFIG_DIR={d}/etc/keystone",
            processes=2))
        self._write("etc/placement/placement.conf", _ini({
            "DEFAULT": {"log_dir": f"{d}/log", "log_file": "placement.log"},
            "api": {"auth_strategy": "keystone"},
            "placement_database": {"connection": self._db("placement")},
            "keystone_authtoken": self._authtoken(),
            "oslo_policy": {"policy_dirs": f"{d}/etc/placement/policy.d"},
        }))
        self._write("etc/placement/uwsgi.ini", self._uwsgi(
            "placement", p["placement"], "/usr/bin/placement-api", f"OS_PLACEMENT_CONFIG_DIR={d}/etc/placement"))
        self._write("etc/glance/glance-api.conf", _ini({
            "DEFAULT": {"bind_host": "127.0.0.1", "bind_port": p["glance"], "workers": 0, "log_dir": f"{d}/log",
                        "log_file": "glance-api.log", "enabled_backends": "file:file",
                        "enforce_secure_rbac": "True"},
            "glance_store": {"default_backend": "file"},
            "file": {"filesystem_store_datadir": f"{d}/glance/images"},
            "database": {"connection": self._db("glance")},
            "paste_deploy": {"flavor": "keystone", "config_file": "/etc/glance/glance-api-paste.ini"},
            "keystone_authtoken": self._authtoken(),
            "oslo_concurrency": {"lock_path": f"{d}/glance/lock"},
            "oslo_policy": {**policy, "policy_file": f"{d}/etc/glance/policy.yaml",
                            "policy_dirs": f"{d}/etc/glance/policy.d"},
            "os_glance_tasks_store": {"filesystem_store_datadir": f"{d}/glance/tasks"},
            "os_glance_staging_store": {"filesystem_store_datadir": f"{d}/glance/staging"},
        }))
        nova = {
            "DEFAULT": {"transport_url": f"rabbit://guest:guest@127.0.0.1:{p['amqp']}/",
                        "compute_driver": self.compute_driver, "state_path": f"{d}/nova",
                        "instances_path": f"{d}/nova/instances", "log_dir": f"{d}/log", "my_ip": "127.0.0.1",
                        "host": COMPUTE_HOST, "use_rootwrap_daemon": "False",
                        # libvirt domain names of this fixture's own (libvirt
                        # keeps definitions across its restarts).
                        "instance_name_template": self.instance_prefix + "-%08x",
                        # SQLite has one writer at a time, and a transaction
                        # that read before another's commit gets "database
                        # is locked" at once, whatever the busy timeout: a
                        # delete then ends in ERROR. Fewer writes, fewer
                        # such collisions: heartbeats every 60 s, not 10.
                        "report_interval": 60, "service_down_time": 300},
            "api": {"auth_strategy": "keystone"},
            "wsgi": {"api_paste_config": f"{d}/etc/nova/api-paste.ini"},
            "api_database": {"connection": self._db("nova_api"), "sqlite_synchronous": "False"},
            "database": {"connection": self._db("nova"), "sqlite_synchronous": "False"},
            "conductor": {"workers": 1},
            # The scheduler maps new compute hosts to the cell itself, every 2 s.
            "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": 2},
            "keystone_authtoken": self._authtoken(),
            "placement": self._service_auth(),
            "glance": {"api_servers": f"http://127.0.0.1:{p['glance']}"},
            "neutron": self._service_auth(),
            "oslo_concurrency": {"lock_path": f"{d}/nova/lock"},
            "oslo_policy": {**policy, "policy_file": f"{d}/etc/nova/policy.yaml",
                            "policy_dirs": f"{d}/etc/nova/policy.d"},
            "oslo_messaging_rabbit": {"heartbeat_timeout_threshold": 0},
            "vnc": {"enabled": "false"},
            "service_user": {"send_service_user_token": "false"},
            "quota": {"instances": -1, "cores": -1, "ram": -1},
            "libvirt": {"virt_type": "qemu"},
        }
        for section, items in self.nova_conf_extra.items():
            nova.setdefault(section, {}).update(items)
        self._write("etc/nova/nova.conf", _ini(nova))
        # See ROLE in the module's docstring.
        mine = "rule:project_member_or_admin or (role:%s and project_id:%%(project_id)s)" % ROLE
        # Glance's download_image wants `member`; a compute host that
        # fetches an image (libvirt; not the fake driver) does so with the
        # user's token.
        visible = ("project_id:%(project_id)s or 'public':%(visibility)s or 'community':%(visibility)s"
                   " or 'shared':%(visibility)s")
        self._write("etc/glance/policy.yaml", f'"download_image": "role:admin or (role:member and ({visible}))'
                    f" or (role:{ROLE} and (project_id:%(project_id)s or 'public':%(visibility)s))\"\n")
        self._write("etc/nova/policy.yaml", "".join(
            f'"os_compute_api:servers:{rule}": "{mine}"\n'
            for rule in ("create", "create:attach_network", "create:attach_volume", "delete")))
        # nova-api-wsgi reads api-paste.ini from its config directory.
        shutil.copy("/etc/nova/api-paste.ini", self.path("etc/nova/api-paste.ini"))
        self._write("etc/nova/uwsgi.ini", self._uwsgi(
            "nova-api", p["nova"], "/usr/bin/nova-api-wsgi", f"OS_NOVA_CONFIG_DIR={d}/etc/nova"))
        os.makedirs(self.path("rabbit"), exist_ok=True)
        self._write("rabbit/rabbitmq-env.conf",
                    'SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"\n')
        self._write("rabbit/enabled_plugins", "[].\n")
        self._write("rabbit/rabbitmq.conf", f"listeners.tcp.1 = 127.0.0.1:{p['amqp']}\nloopback_users.guest = true\n")

    # ------------------------------------------------------------- pieces

    def _rabbit_env(self):
        d, p = self.dir, self.ports
        return {"HOME": f"{d}/rabbit", "RABBITMQ_NODENAME": f"rabbit-{p['amqp']}@localhost",
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(p["amqp"]),
                "RABBITMQ_DIST_PORT": str(p["dist"]), "ERL_EPMD_ADDRESS": "127.0.0.1",
                "ERL_EPMD_PORT": str(p["epmd"]), "RABBITMQ_MNESIA_BASE": f"{d}/rabbit/mnesia",
                "RABBITMQ_LOG_BASE": f"{d}/rabbit/log", "RABBITMQ_PID_FILE": f"{d}/rabbit/rabbit.pid",
                "RABBITMQ_CONF_ENV_FILE": f"{d}/rabbit/rabbitmq-env.conf",
                "RABBITMQ_CONFIG_FILE": f"{d}/rabbit/rabbitmq",
                "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/rabbit/enabled_plugins",
                "RABBITMQ_ADVANCED_CONFIG_FILE": f"{d}/rabbit/advanced.config"}

    def _start_rabbit(self):
        t0 = time.monotonic()
        rabbit = pwd.getpwnam("rabbitmq")
        os.chown(self.path("rabbit"), rabbit.pw_uid, rabbit.pw_gid)
        env = self._rabbit_env()
        # Our own epmd on our own port, in the foreground, so that its PID
        # is ours to stop (rabbit would otherwise start a detached one).
        self._spawn("epmd", ["epmd", "-port", str(self.ports["epmd"]), "-address", "127.0.0.1"],
                    env=env, user="rabbitmq")
        self._spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env, user="rabbitmq")
        deadline = time.monotonic() + 120
        while True:
            self._check_alive("rabbitmq")
            try:
                with socket.create_connection(("127.0.0.1", self.ports["amqp"]), timeout=2) as s:
                    s.sendall(b"AMQP\x00\x00\x09\x01")
                    if s.recv(8)[:1] == b"\x01":  # a method frame: connection.start
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("RabbitMQ did not accept AMQP within 120 s:\n"
                                   + self._tail(self.path("log", "rabbitmq.out")))
            time.sleep(0.3)
        self.timings["rabbit"] = time.monotonic() - t0

    def _start_keystone(self):
        t0 = time.monotonic()
        me = pwd.getpwuid(os.getuid())
        url = self.auth_url + "/"
        owner = ["--keystone-user", me.pw_name, "--keystone-group", str(me.pw_gid)]
        self._run("keystone-manage", self._manage("keystone", self.path("etc/keystone/keystone.conf"), [
            ["db_sync"], ["fernet_setup", *owner], ["credential_setup", *owner],
            ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-admin-url", url,
             "--bootstrap-internal-url", url, "--bootstrap-public-url", url, "--bootstrap-region-id", REGION]]))
        self._wal("keystone")
        self._spawn("keystone", ["uwsgi", "--ini", self.path("etc/keystone/uwsgi.ini")])
        self._wait_http("keystone", self.auth_url)
        self.timings["keystone"] = time.monotonic() - t0

    def _sync_databases(self):
        t0 = time.monotonic()
        env = {"OS_PLACEMENT_CONFIG_DIR": self.path("etc/placement")}
        side = [threading.Thread(target=f) for f in (
            lambda: self._run("placement-manage", ["placement-manage", "--config-dir", self.path("etc/placement"),
                                                   "db", "sync"], env=env),
            lambda: self._run("glance-manage", ["glance-manage", "--config-file",
                                                self.path("etc/glance/glance-api.conf"), "db_sync"]))]
        errors = []
        for t in side:
            t.run = (lambda run: lambda: self._catch(run, errors))(t.run)
            t.start()
        self._run("nova-manage", [PYTHON, "-P", os.path.join(HERE, "manage.py"), "nova",
                                  self.path("etc/nova/nova.conf"), self._db("nova_cell0")])
        for t in side:
            t.join()
        if errors:
            raise errors[0]
        for db in ("placement", "glance", "nova_api", "nova_cell0", "nova"):
            self._wal(db)
        self.timings["db syncs"] = time.monotonic() - t0

    @staticmethod
    def _manage(project, config, commands):
        """One interpreter for several keystone-manage or nova-manage
        commands (manage.py): each start of one costs seconds of CPU."""
        argv = [PYTHON, "-P", os.path.join(HERE, "manage.py"), project, config]
        for i, cmd in enumerate(commands):
            argv += (["--"] if i else []) + cmd
        return argv

    @staticmethod
    def _catch(f, errors):
        try:
            f()
        except BaseException as e:  # noqa: B902 - re-raised by the caller
            errors.append(e)

    def _db(self, name):
        """A database URL. timeout: SQLite waits up to 60 s for another
        process's write lock (pysqlite's default, 5 s, is too short for
        four Nova services on two loaded CPUs: "database is locked", and a
        build or a delete fails half-way)."""
        return f"sqlite:///{self.dir}/{name}.db?timeout=60"

    def _wal(self, db):
        """SQLite in WAL mode, else the services see "database is locked"."""
        with sqlite3.connect(self.path(db + ".db")) as c:
            c.execute("PRAGMA journal_mode=WAL")
        c.close()

    def _start_services(self):
        d = self.dir
        nova_conf = ["--config-file", self.path("etc/nova/nova.conf")]
        self._spawn("placement", ["uwsgi", "--ini", self.path("etc/placement/uwsgi.ini")])
        self._spawn("glance-api", ["glance-api", "--config-file", self.path("etc/glance/glance-api.conf")])
        self._spawn("nova-api", ["uwsgi", "--ini", self.path("etc/nova/uwsgi.ini")])
        self._spawn("nova-conductor", ["nova-conductor"] + nova_conf)
        self._spawn("nova-scheduler", ["nova-scheduler"] + nova_conf)
        # python3 -P: the scratch directory holds a nova/ state folder,
        # which would shadow the nova package on sys.path.
        self._spawn("nova-compute", [PYTHON, "-P", "-c", "import sys; from nova.cmd.compute import main; "
                                     "sys.argv[0] = 'nova-compute'; sys.exit(main())"] + nova_conf
                    + ["--log-file", f"{d}/log/nova-compute.log"])
        self._spawn("neutron-stub", [PYTHON, os.path.join(HERE, "neutron_stub.py"), str(self.ports["neutron"]),
                                     self.network_id, NETWORK, f"{d}/log/neutron-stub-requests.log"])

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


def stop_shared():
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
