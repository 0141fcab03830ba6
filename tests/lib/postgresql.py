#!/usr/bin/python3
"""A private PostgreSQL server for the tests, in a temporary directory.

As a module: Postgres().start() ... .stop(); .outage() stops it and
.start() brings it back on the same data and socket.

As a program: postgresql.py COMMAND [ARG...] starts a server, runs COMMAND
with BUILDYARD_TEST_DATABASE=postgresql and BUILDYARD_TEST_PG_URI (a libpq
URI of an empty database `buildyard`, over a Unix socket in the temporary
directory), stops the server by its PID and removes the directory; exits
with COMMAND's status. The server runs as the user `postgres` (it refuses
root), listens on no TCP port, and trades durability for speed (fsync=off):
these are tests, not a database to keep. BUILDYARD_PG_DURABLE=1 keeps
PostgreSQL's defaults (fsync, synchronous_commit) instead, for benchmarks.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BINDIR = "/usr/lib/postgresql/15/bin"
PORT = 5432  # only the socket's name: nothing listens on TCP


def _as_postgres():
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []


class Postgres:
    def __init__(self, fast=True):
        self.dir = tempfile.mkdtemp(prefix="buildyard-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.fast = fast
        self.proc = None
        self.uri = f"postgresql:///buildyard?host={self.sock}&port={PORT}&user=postgres"
        # The socket's directory lets every user through (0711): a master
        # that runs as another user (test_access runs it as nobody) must
        # reach the socket, which PostgreSQL makes 0777 itself.
        for d, mode in ((self.data, 0o700), (self.sock, 0o711)):
            os.mkdir(d, mode)
            if os.geteuid() == 0:
                shutil.chown(d, "postgres", "postgres")
        subprocess.run(_as_postgres() + [f"{BINDIR}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                                         "-E", "UTF8", "--locale=C", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def start(self, create=True):
        """Starts the server (again) and waits until it answers; creates the
        database `buildyard` the first time."""
        settings = ["-c", "listen_addresses=", "-k", self.sock, "-p", str(PORT), "-c", "max_connections=200"]
        if self.fast:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with open(os.path.join(self.dir, "server.log"), "ab") as log:
            self.proc = subprocess.Popen(_as_postgres() + [f"{BINDIR}/postgres", "-D", self.data] + settings,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run([f"{BINDIR}/pg_isready", "-q", "-h", self.sock, "-p", str(PORT)]).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start: " + self.log())
            time.sleep(0.05)
        if create and not getattr(self, "_created", False):
            self.psql("CREATE DATABASE buildyard", db="postgres")
            self._created = True
        return self

    def psql(self, sql, db="buildyard"):
        """Runs `sql`; returns its output, unaligned, without headers."""
        return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-p",
                               str(PORT), "-U", "postgres", "-d", db, "-c", sql],
                              check=True, capture_output=True, text=True).stdout.strip()

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def outage(self):
        """Stops the server (a fast shutdown: clients are disconnected)."""
        self._stop()

    def _stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        """Stops the server and removes everything it had."""
        self._stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        print("usage: postgresql.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    pg = Postgres(fast=os.environ.get("BUILDYARD_PG_DURABLE") != "1")
    try:
        pg.start()
        env = dict(os.environ, BUILDYARD_TEST_DATABASE="postgresql", BUILDYARD_TEST_PG_URI=pg.uri)
        return subprocess.run(sys.argv[1:], env=env).returncode
    finally:
        pg.stop()


if __name__ == "__main__":
    sys.exit(main())
