"""Helpers for test_builds, test_crash, test_introspection and test_daemon:
a master started with more environment, D-Bus calls that show error names,
and SignalMonitor (harness.py)."""

import json
import os

from harness_process import BIN, MASTER, wait_for


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
