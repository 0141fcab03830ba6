"""A private system bus with the real Buildyard daemons, for integration tests.

Everything a test starts it also stops, by PID. The daemons come from
$BUILDYARD_BIN (build/bin), the bus policy from $BUILDYARD_SOURCE/dbus.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
import unittest

SOURCE = os.environ.get("BUILDYARD_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("BUILDYARD_BIN", os.path.join(SOURCE, "build", "bin"))

MASTER = "org.buildyard.Master1"
MASTER_PATH = "/org/buildyard/Master1"

with open(os.path.join(SOURCE, "tests", "lib", "system-bus.conf.in")) as _f:
    BUS_CONFIG = _f.read().replace("@DIR@", "{dir}").replace("@POLICYDIR@", "{policydir}")
# Every policy of the project (the master's and latentd's) is in force.
POLICY_DIR = os.path.join(SOURCE, "dbus")

NOBODY_UID = 65534

# BUILDYARD_TEST_DATABASE=postgresql (set by tests/lib/postgresql.py, which
# starts the server): each System's master keeps its state in a schema of
# its own in that server, named by a drop-in of its own
# (master.d/zz-test-database.ini), so that master.ini's lines stay where
# the tests expect them.
PG_URI = os.environ.get("BUILDYARD_TEST_PG_URI", "") if os.environ.get(
    "BUILDYARD_TEST_DATABASE") == "postgresql" else ""
_systems = 0


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, what="condition"):
    """Polls predicate until it returns a true value; fails after timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def master_ini(workers, builders=None, *, name=None, listen="", master_lines="", worker_type="local"):
    """The text of a master.ini: [master] (name = `name` if given; listen =
    `listen`, nothing by default; then `master_lines`: more keys, or more
    sections such as [mail]), then workers as
    {name: "more lines"} or a list of names, each `type = worker_type`
    unless its lines name a type (None: no type line, a remote worker), then
    builders as {name: ([workers], [steps])}. One line a setting, no blank
    lines."""
    def ended(lines):
        return lines if not lines or lines.endswith("\n") else lines + "\n"
    if not isinstance(workers, dict):
        workers = dict.fromkeys(workers, "")
    text = "[master]\n" + (f"name = {name}\n" if name else "") + "listen =" + (f" {listen}\n" if listen else "\n")
    text += ended(master_lines)
    for worker, lines in workers.items():
        text += f"[worker {worker}]\n"
        if worker_type and "type =" not in lines:
            text += f"type = {worker_type}\n"
        text += ended(lines)
    for builder, (names, steps) in (builders or {}).items():
        text += f"[builder {builder}]\nworkers = {', '.join(names)}\n"
        text += "".join(f"step.{i} = {step}\n" for i, step in enumerate(steps, 1))
    return text


class Process:
    """A process a System started. Its NOTIFY_SOCKET, if it has one, is read
    all the time, as systemd does: undrained, the socket's queue
    (net.unix.max_dgram_qlen, often 10) fills and the daemon blocks in
    sd_notify() for good. wait_notify() works on the datagrams read so far;
    `messages` keeps them all."""

    def __init__(self, popen, log_path, notify=None):
        self.popen = popen
        self.log_path = log_path
        self.notify = notify
        self.messages = []
        self._cursor = 0
        self._cond = threading.Condition()
        if notify is not None:
            threading.Thread(target=self._read, args=(notify,), daemon=True).start()

    def _read(self, sock):
        while True:
            try:
                sock.settimeout(0.2)
                msg = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return  # closed by stop()
            with self._cond:
                self.messages.append(msg.decode(errors="replace"))
                self._cond.notify_all()

    @property
    def pid(self):
        return self.popen.pid

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.popen.pid, sig)

    def wait(self, timeout=20):
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout=10):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.notify:
            self.notify.close()
            self.notify = None

    def notified(self, line):
        """How many of its datagrams so far have `line` as one of their lines."""
        with self._cond:
            return sum(1 for m in self.messages if line in m.split("\n"))

    def wait_notify(self, text, timeout=10):
        """Waits for a datagram on this process's NOTIFY_SOCKET containing
        text, after those an earlier wait_notify() returned."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._cursor < len(self.messages):
                    msg = self.messages[self._cursor]
                    self._cursor += 1
                    if text in msg:
                        return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no '{text}' from pid {self.pid} in {timeout}s; log:\n{self.log()}")
                self._cond.wait(remaining)


class System:
    """A private dbus-daemon plus the daemons a test starts on it. Their
    notify sockets are drained (see Process)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="buildyard-it-")
        os.chmod(self.dir, 0o755)
        self.env = dict(os.environ)
        self.env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={self.dir}/bus"
        self.env.pop("JOURNAL_STREAM", None)
        self.env.pop("NOTIFY_SOCKET", None)
        self.procs = []
        self.bus = None
        self.master = None
        self.workers = {}
        self.config_path = os.path.join(self.dir, "etc", "master.ini")
        self.state_dir = os.path.join(self.dir, "state")
        os.makedirs(os.path.join(self.dir, "etc", "master.d"))
        os.makedirs(os.path.join(self.dir, "etc", "workers"))
        self.database = ""
        if PG_URI:
            global _systems
            _systems += 1
            schema = f"s{os.getpid()}_{_systems}"
            subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", PG_URI, "-c", f"CREATE SCHEMA {schema}"],
                           check=True)
            self.database = f"{PG_URI}&options=-csearch_path%3D{schema}"
            with open(os.path.join(self.dir, "etc", "master.d", "zz-test-database.ini"), "w") as f:
                f.write(f"[master]\ndatabase = {self.database}\n")

    # --- processes -----------------------------------------------------

    def _spawn(self, name, argv, env=None, notify=False, user=None):
        log_path = os.path.join(self.dir, f"{name}.log")
        env = dict(env or self.env)
        sock = None
        if notify:
            path = os.path.join(self.dir, f"{name}.notify")
            if os.path.exists(path):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(path)
            os.chmod(path, 0o777)
            env["NOTIFY_SOCKET"] = path
        kwargs = {}
        if user is not None:
            kwargs["user"] = user
            kwargs["group"] = user
            kwargs["extra_groups"] = []
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     cwd=self.dir, **kwargs)
        p = Process(popen, log_path, sock)
        self.procs.append(p)
        return p

    def start_bus(self, extra_policy=None):
        """Starts the bus and returns when it accepts connections: its socket
        file appears at bind(), a moment before listen(), so a daemon started
        in that moment would fail with "Connection refused". extra_policy:
        <policy> elements (XML text) that one test needs, or None."""
        conf = os.path.join(self.dir, "bus.conf")
        text = BUS_CONFIG.format(dir=self.dir, policydir=POLICY_DIR)
        if extra_policy is not None:
            extra = os.path.join(self.dir, "extra-policy.conf")
            with open(extra, "w") as f:
                f.write('<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"\n'
                        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
                        f"<busconfig>{extra_policy}</busconfig>\n")
            text = text.replace("</busconfig>", f"  <include>{extra}</include>\n</busconfig>")
        with open(conf, "w") as f:
            f.write(text)
        self.bus = self._spawn("dbus-daemon", ["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile"])
        socket_path = os.path.join(self.dir, "bus")
        wait_for(lambda: os.path.exists(socket_path), what="the bus socket")
        os.chmod(socket_path, 0o777)

        def accepts():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(socket_path)
                    return True
                except OSError:
                    return False
        wait_for(accepts, 10, "the bus to accept connections")
        return self

    def write_config(self, text, name=None):
        path = self.config_path if name is None else os.path.join(self.dir, "etc", "master.d", name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def start_master(self, *args, wait_ready=True):
        argv = [os.path.join(BIN, "buildyard-masterd"), "--config", self.config_path,
                "--state-directory", self.state_dir, *args]
        self.master = self._spawn("master", argv, notify=True)
        if wait_ready:
            self.master.wait_notify("READY=1")
        return self.master

    def start_worker(self, name, wait_attached=True, user=None, basedir=None, config=None):
        basedir = basedir or os.path.join(self.dir, "workers", name)
        os.makedirs(basedir, exist_ok=True)
        if user is not None:
            os.chown(basedir, user, user)
        argv = [os.path.join(BIN, "buildyard-workerd"), "--name", name, "--basedir", basedir]
        config = config or os.path.join(self.dir, "etc", "workers", f"{name}.ini")
        if os.path.exists(config):
            argv += ["--config", config]
        w = self._spawn(f"worker-{name}-{len(self.procs)}", argv, notify=True, user=user)
        self.workers[name] = w
        if wait_attached:
            self.wait_attached(name)
        return w

    def wait_attached(self, name, attached=True, timeout=10):
        wait_for(lambda: self.worker_prop(name, "Connected") == attached, timeout,
                 f"worker {name} to be {'attached' if attached else 'detached'}")

    def close(self):
        for p in reversed(self.procs):
            if p is not self.bus:
                p.stop()
        if self.bus:
            self.bus.stop()
        self.kill_orphans()
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill_orphans(self):
        """Kills build steps left behind by workers a test killed with
        SIGKILL (outside systemd nothing else reaps their process groups):
        every process whose working directory is inside this system's."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd == self.dir or cwd.startswith(self.dir + "/"):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass

    # --- talking to the system -----------------------------------------

    def run(self, argv, check=True, user=None, timeout=60):
        kwargs = {}
        if user is not None:
            kwargs["user"] = user
            kwargs["group"] = user
            kwargs["extra_groups"] = []
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs)
        if check and r.returncode != 0:
            raise AssertionError(f"{argv} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def ctl(self, *args, check=True, user=None, timeout=60):
        return self.run([os.path.join(BIN, "buildyardctl"), *args], check=check, user=user, timeout=timeout)

    def busctl(self, *args, check=True, user=None):
        return self.run(["busctl", "--system", "--json=short", *args], check=check, user=user)

    def call(self, path, iface, method, sig="", *args, check=True, user=None):
        r = self.busctl("call", MASTER, path, iface, method, *([sig] if sig else []), *map(str, args),
                        check=check, user=user)
        return json.loads(r.stdout)["data"] if r.returncode == 0 and r.stdout.strip() else r

    def get(self, path, iface, prop):
        r = self.busctl("get-property", MASTER, path, iface, prop)
        return json.loads(r.stdout)["data"]

    def worker_path(self, name):
        return self.call(MASTER_PATH, "org.buildyard.Master1", "GetWorker", "s", name)[0]

    def worker_prop(self, name, prop):
        return self.get(self.worker_path(name), "org.buildyard.Worker1", prop)

    def build_path(self, build_id):
        return self.call(MASTER_PATH, "org.buildyard.Master1", "GetBuild", "t", build_id)[0]

    def build_prop(self, build_id, prop):
        return self.get(self.build_path(build_id), "org.buildyard.Build1", prop)

    def submit(self, builder, **props):
        args = [builder, len(props)]
        for k, v in props.items():
            args += [k, v]
        path = self.call(MASTER_PATH, "org.buildyard.Master1", "SubmitBuild", "sa{ss}", *args)[0]
        return int(self.get(path, "org.buildyard.Build1", "Id"))

    def wait_build(self, build_id, timeout=30, follow_retry=False):
        """Waits until the build is finished; returns (final id, result)."""
        def finished():
            state = self.build_prop(build_id, "State")
            return state == "finished"
        wait_for(finished, timeout, f"build {build_id} to finish")
        result = self.build_prop(build_id, "Result")
        if follow_retry and result == "retry":
            return self.wait_build(int(self.build_prop(build_id, "RetriedAs")), timeout, True)
        return build_id, result

    def read_log(self, build_id):
        data = b""
        path = self.build_path(build_id)
        while True:
            chunk = self.call(path, "org.buildyard.Build1", "ReadLog", "tt", len(data), 65536)[0]
            if not chunk:
                return data.decode(errors="replace")
            data += bytes(chunk)


class SystemTest(unittest.TestCase):
    """A test case with a fresh System (bus started) per test. bus_policy:
    extra <policy> elements for the bus (see System.start_bus)."""

    bus_policy = None

    def setUp(self):
        self.sys = System()
        self.addCleanup(self.sys.close)
        self.sys.start_bus(self.bus_policy)

    def path(self, name):
        """`name` in this test's directory."""
        return os.path.join(self.sys.dir, name)

    def wait_go(self, name="go"):
        """A shell loop that waits until the test creates the file `name` (go).
        It also ends when the test's directory is gone, so no loop outlives a test."""
        return f"while [ ! -e {self.path(name)} ] && [ -d {self.sys.dir} ]; do sleep 0.05; done"

    def go(self, name="go"):
        open(self.path(name), "w").close()

    def lines(self, name):
        """The lines of the file `name` in this test's directory; none if it is not there."""
        try:
            with open(self.path(name)) as f:
                return f.read().split("\n")[:-1]
        except FileNotFoundError:
            return []


# ===========================================================================
# Helpers for test_builds, test_crash, test_introspection and test_daemon.

def start_master_env(system, extra_env, *args, wait_ready=True, name="master"):
    """System.start_master with extra environment variables (e.g. WATCHDOG_USEC)."""
    argv = [os.path.join(BIN, "buildyard-masterd"), "--config", system.config_path,
            "--state-directory", system.state_dir, *args]
    env = dict(system.env)
    env.update(extra_env)
    p = system._spawn(name, argv, env=env, notify=True)
    if name == "master":
        system.master = p
    if wait_ready:
        p.wait_notify("READY=1")
    return p


def dbus_send(system, path, method, *args, dest=MASTER, user=None):
    """Calls iface.Method with dbus-send (which prints error names; busctl does
    not), as `user` if given. args are dbus-send arguments such as
    "uint64:5". Returns (error name or None, the reply or error text)."""
    r = system.run(["dbus-send", "--system", "--print-reply", f"--dest={dest}", path, method, *args], check=False,
                   user=user)
    if r.returncode == 0:
        return None, r.stdout
    first = r.stderr.strip().split(":", 1)[0]
    return (first[len("Error "):] if first.startswith("Error ") else r.stderr.strip()), r.stderr


def bus_error(system, path, method, *args, dest=MASTER):
    """dbus_send's error name only."""
    return dbus_send(system, path, method, *args, dest=dest)[0]


def all_properties(system, path, iface):
    """Every property of iface on path, in one call: {name: value}."""
    data = system.call(path, "org.freedesktop.DBus.Properties", "GetAll", "s", iface)[0]
    return {k: v["data"] for k, v in data.items()}


def read_log_slice(system, build_id, offset, size):
    """One ReadLog(offset, size) call, as bytes."""
    return bytes(system.call(system.build_path(build_id), "org.buildyard.Build1", "ReadLog", "tt", offset, size)[0])


def unique_names_of(system, pid):
    """The unique bus names held by process pid."""
    names = json.loads(system.busctl("list").stdout)
    return [n["name"] for n in names if n.get("pid") == pid and n["name"].startswith(":")]


def process_gone(pid):
    """True if pid has exited (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


class SignalMonitor:
    """dbus-monitor in the background, collecting the signals that match
    `match` (dbus-monitor syntax). Ready when it has seen a signal of our own,
    so nothing sent after the constructor returns is missed."""

    SENTINEL_IFACE = "org.buildyard.Test.Monitor"

    def __init__(self, system, match):
        self.system = system
        self.proc = system._spawn(f"dbus-monitor-{len(system.procs)}",
                                  ["dbus-monitor", "--system", match,
                                   f"type=signal,interface={self.SENTINEL_IFACE}"])

        def ready():
            system.run(["busctl", "--system", "emit", "/org/buildyard/Test", self.SENTINEL_IFACE, "Ready"])
            return any(s[1] == "Ready" for s in self._parse())
        wait_for(ready, 10, "dbus-monitor to start")

    def _parse(self):
        """[(path, member, [arg, ...]), ...] of the signals seen so far."""
        out = []
        for line in self.proc.log().splitlines():
            if line.startswith("signal "):
                fields = dict(kv.split("=", 1) for kv in line.replace(";", "").split() if "=" in kv)
                out.append((fields.get("path"), fields.get("member"), []))
            elif line.startswith("   ") and out:
                text = line.strip()
                if text.endswith('"') and '"' in text[:-1]:
                    text = text[text.index('"') + 1:-1]
                out[-1][2].append(text)
        return out

    def signals(self, member):
        return [(path, args) for path, m, args in self._parse() if m == member]

    def wait(self, member, predicate=lambda path, args: True, timeout=10):
        return wait_for(lambda: [s for s in self.signals(member) if predicate(*s)], timeout,
                        f"signal {member}")


# --- build gates (test_workers, test_reload) ------------------------------
# A step that waits until the test opens its build's gate, so a test decides
# when a running build ends instead of sleeping.

def gate_dir(system):
    """A directory every uid may write, holding the gate files."""
    path = os.path.join(system.dir, "gates")
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o777)
    return path


def gate_step(system):
    """Shell for a step that marks its build started, then waits for its gate."""
    d = gate_dir(system)
    # The loop also ends when the test's directory is gone, so a step
    # orphaned by a killed worker cannot outlive its test.
    # (Short: a config line holds at most 198 characters.)
    return (f"cd {d} && touch started-$BUILDYARD_BUILD_ID && "
            f"while [ ! -e go-$BUILDYARD_BUILD_ID ] && [ -d {d} ]; do sleep 0.02; done")


def wait_gate_reached(system, build_id, timeout=10):
    """Waits until build_id's step is running on its worker; fails at once
    if the build finishes instead."""
    path = os.path.join(gate_dir(system), f"started-{build_id}")
    wait_for(lambda: os.path.exists(path) or system.build_prop(build_id, "State") == "finished", timeout,
             f"build {build_id} to reach its gate")
    if not os.path.exists(path):
        raise AssertionError(f"build {build_id} finished {system.build_prop(build_id, 'Result')} before its gate; "
                             f"log:\n{system.read_log(build_id)}")


def open_gate(system, build_id):
    open(os.path.join(gate_dir(system), f"go-{build_id}"), "w").close()


def master_fingerprint(system):
    """The running master's TLS certificate fingerprint (Master1.TlsFingerprint)."""
    return system.get(MASTER_PATH, "org.buildyard.Master1", "TlsFingerprint")


class RemoteLinkTest(SystemTest):
    """A master listening for remote workers on a free loopback port
    (test_remote, test_tls)."""

    def setUp(self):
        super().setUp()
        self.port = free_port()

    def start(self, text, env=None):
        self.sys.write_config(text)
        if env:
            return start_master_env(self.sys, env)
        return self.sys.start_master()

    def master_lines(self, pattern):
        import re
        return [line for line in self.sys.master.log().splitlines() if re.search(pattern, line)]


# --- buildyard-latentd (test_latentd) --------------------------------------

LATENT = "org.buildyard.Latent1"
LATENT_PATH = "/org/buildyard/Latent1"


def start_latentd(system, extra_env=None, *args, wait_ready=True, name="latentd", state_dir=None, settings=None):
    """buildyard-latentd on the system's bus, reading the master's config
    file, with its own state directory (default DIR/latent-state).
    `settings` are its [latentd] keys, e.g. {"health_interval": "0.5"}: this
    start gets exactly those, from the drop-in master.d/latentd.ini.
    Returns the Process."""
    dropin = os.path.join(system.dir, "etc", "master.d", "latentd.ini")
    if settings:
        system.write_config("[latentd]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()), name="latentd.ini")
    elif os.path.exists(dropin):
        os.remove(dropin)
    state_dir = state_dir or os.path.join(system.dir, "latent-state")
    argv = [os.path.join(BIN, "buildyard-latentd"), "--config", system.config_path,
            "--state-directory", state_dir, *args]
    env = dict(system.env)
    env.update(extra_env or {})
    p = system._spawn(name, argv, env=env, notify=True)
    if wait_ready:
        p.wait_notify("READY=1", timeout=30)
    return p
