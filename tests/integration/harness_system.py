"""System: a private system bus with the real Buildyard daemons on it, and
master_ini(), the text of a master's config (harness.py)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap

from harness_database import state_rows, system_database
from harness_process import BIN, MASTER, MASTER_PATH, SOURCE, Process, wait_for

with open(os.path.join(SOURCE, "tests", "lib", "system-bus.conf.in")) as _f:
    BUS_CONFIG = _f.read().replace("@DIR@", "{dir}").replace("@POLICYDIR@", "{policydir}")
# Every policy of the project (the master's and latentd's) is in force.
POLICY_DIR = os.path.join(SOURCE, "dbus")


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
        self.database = system_database(os.path.join(self.dir, "etc", "master.d"))

    def state_rows(self, sql):
        """The rows of a SELECT in the master's state, on either database
        (harness_database.state_rows)."""
        return state_rows(self.database, self.state_dir, sql)

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
