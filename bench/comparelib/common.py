"""Processes, gates, memory and client helpers shared by both systems."""
import os
import re
import signal
import subprocess
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from free_port import free_port  # noqa: E402,F401  (tests/lib; used by the two systems)

LOG_LINE = '0123456789' * 7  # 70 characters and a newline per line of log
MiB = 1024 * 1024
# Builders list the first 8 workers, also when more are configured (the
# attach storm): a Buildyard line holds at most 198 characters, ~30 names.
BUILDER_WORKERS = 8


class Failed(Exception):
    pass


# --- processes -------------------------------------------------------------

class Procs:
    """Every process this script starts, each in its own session; stopped by
    PID (and then its process group) on teardown."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, env=None, pipe=False):
        """stdout and stderr go to `log`; with pipe, stdout to p.stdout."""
        with open(log, 'ab') as f:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if pipe else f, stderr=f,
                                 env=env, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, procs=None, timeout=60):
        procs = list(self.procs if procs is None else procs)
        for p in reversed(procs):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            try:
                os.killpg(p.pid, signal.SIGKILL)  # what it left behind in its group
            except (ProcessLookupError, PermissionError):
                pass
        self.procs = [p for p in self.procs if p not in procs]


def wait_until(predicate, timeout, what, procs=()):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        for p in procs:
            if p.poll() is not None:
                raise Failed(f'{what}: {p.args[0]} exited with status {p.returncode}')
        if time.monotonic() > deadline:
            raise Failed(f'{what}: not within {timeout} s')
        time.sleep(0.02)


def rss_kib(pid):
    """(Rss, Pss) in KiB from /proc/PID/smaps_rollup."""
    fields = {}
    with open(f'/proc/{pid}/smaps_rollup') as f:
        for line in f:
            parts = line.split()
            if parts[0] in ('Rss:', 'Pss:'):
                fields[parts[0][:-1]] = int(parts[1])
    return fields['Rss'], fields['Pss']


def run_client(argv, timeout, log, env=None):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)
    with open(log, 'a') as f:
        f.write(f'$ {" ".join(argv)}\n{r.stdout}{r.stderr}')
    if r.returncode != 0:
        raise Failed(f'{" ".join(argv[:3])}... failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-600:]}')
    return r.stdout


def attached_at(p, timeout, who, client, errfile):
    """Waits for an attach watcher `p` (a client that prints "attached N at
    TIME" once all have attached) and returns that TIME."""
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f'{who} did not all attach within {timeout} s')
    m = re.search(r'attached \d+ at ([0-9.]+)', out.decode())
    if p.returncode != 0 or not m:
        raise Failed(f'{client} failed; see {errfile}')
    return float(m.group(1))


def parse_latency(out):
    m = re.search(r'median ([0-9.]+) ms, p99 ([0-9.]+) ms', out)
    if not m:
        raise Failed(f'no latency in: {out!r}')
    return float(m.group(1)), float(m.group(2))


def parse_throughput(out):
    m = re.search(r'([0-9.]+) builds/s', out)
    if not m:
        raise Failed(f'no throughput in: {out!r}')
    return float(m.group(1))


class Gate:
    """Processes forked and blocked in `read` on a FIFO; release() lets them
    all exec at once, so a storm measures attaching, not this script's forks."""

    def __init__(self, path):
        self.path = path
        os.mkfifo(path)
        # Held open read-write: the shells' opens never block and a line
        # written before a shell reads it waits in the pipe.
        self.fd = os.open(path, os.O_RDWR)
        self.pids = []

    def wrap(self, argv):
        return ['/bin/sh', '-c', 'read _ <"$0" && exec "$@"', self.path] + argv

    def wait_blocked(self, procs, timeout=120):
        def blocked():
            for p in procs:
                try:
                    with open(f'/proc/{p.pid}/wchan') as f:
                        if 'pipe' not in f.read():  # pipe_read, anon_pipe_read, pipe_wait
                            return False
                except OSError:
                    return False
            return True
        wait_until(blocked, timeout, 'gated processes to block', procs)

    def release(self, n):
        t = time.time()
        os.write(self.fd, b'\n' * n)
        return t

    def close(self):
        os.close(self.fd)


def log_command(mb):
    """The log workload's step: MB (10^6 bytes) of 71-byte text lines on stdout."""
    return f'yes {LOG_LINE} | head -c {mb * 1000000}'


def progress(text):
    print(f'  {time.strftime("%H:%M:%S")} {text}', flush=True)
