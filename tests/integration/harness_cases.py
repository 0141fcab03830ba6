"""The test cases' bases (SystemTest, RemoteLinkTest), build gates, and
buildyard-latentd on a System (harness.py)."""

import os
import re
import unittest

from harness_bus import start_master_env
from harness_process import BIN, MASTER_PATH, free_port, wait_for
from harness_system import System


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
