"""Processes for the integration tests: where the daemons are, waiting for
a condition, and Process, a daemon a System started (harness.py)."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

SOURCE = os.environ.get("BUILDYARD_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("BUILDYARD_BIN", os.path.join(SOURCE, "build", "bin"))

MASTER = "org.buildyard.Master1"
MASTER_PATH = "/org/buildyard/Master1"

NOBODY_UID = 65534

sys.path.insert(0, os.path.join(SOURCE, "tests", "lib"))
from free_port import free_port  # noqa: E402,F401  (tests/lib; re-exported to the tests)


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


def port_holders(log):
    """For each "cannot listen on ADDRESS:PORT: Address already in use" in
    a daemon's log, the sockets on that port now, in any state (ss), to
    tell which test or service took it."""
    out = ""
    for port in sorted(set(re.findall(r"cannot listen on \S*:(\d+): Address already in use", log))):
        try:
            ss = subprocess.run(["ss", "-Htanp", f"sport = :{port}"], capture_output=True, text=True)
            now = ss.stdout.strip() or ss.stderr.strip() or "no socket"
        except OSError as e:
            now = f"unknown (ss: {e.strerror})"
        out += f"\nport {port} now: {now}"
    return out


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
        self.reader_error = None  # why the notify socket's reader stopped, if not by stop()
        self.drained = False  # the process has exited and the reader has read all it sent
        if notify is not None:
            threading.Thread(target=self._read, args=(notify,), daemon=True).start()

    def _read(self, sock):
        while True:
            exited = self.popen.poll() is not None
            try:
                sock.settimeout(0.2)
                msg = sock.recv(4096)
            except socket.timeout:
                if exited and not self.drained:
                    with self._cond:  # nothing came after it ended: nothing more can
                        self.drained = True
                        self._cond.notify_all()
                continue
            except OSError as e:
                if self.notify is not None:
                    self.reader_error = repr(e)
                return  # closed by stop()
            with self._cond:
                self.messages.append(msg.decode(errors="replace"))
                self._cond.notify_all()

    def describe(self):
        """Where the process is, for a failure's message: alive or how it
        ended, the kernel's word for what it waits in, and its notify
        socket's reader."""
        code = self.popen.poll()
        if code is not None:
            out = f"exited {code}"
        else:
            out = "alive"
            for name in ("wchan", "syscall"):
                try:
                    with open(f"/proc/{self.popen.pid}/{name}") as f:
                        out += f", {name} {f.read().split(' ')[0].strip()}"
                except OSError as e:
                    out += f", {name} unreadable ({e.strerror})"
        if self.notify is not None or self.reader_error:
            out += f"; notify datagrams read {len(self.messages)}"
            if self.reader_error:
                out += f", its reader stopped: {self.reader_error}"
        return out

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
        text, after those an earlier wait_notify() returned. Once the process
        has exited and the reader has read all it sent, it fails at once,
        not at the end of the timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._cursor < len(self.messages):
                    msg = self.messages[self._cursor]
                    self._cursor += 1
                    if text in msg:
                        return msg
                code = self.popen.poll() if self.drained else None
                remaining = 0 if code is not None else deadline - time.monotonic()
                if remaining <= 0:
                    log = self.log()
                    why = f"it exited {code}" if code is not None else f"not in {timeout}s"
                    raise AssertionError(f"no '{text}' from pid {self.pid}: {why}; log:\n{log}{port_holders(log)}")
                self._cond.wait(min(remaining, 0.2))
