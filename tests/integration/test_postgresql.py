"""The master on PostgreSQL ([master] database = postgresql://...), with a
real server of its own (tests/lib/postgresql.py): it refuses to start when
the server is not there or the config holds a password, takes the password
from a systemd credential or libpq's password file, refuses a reload that
changes the database, and rides out the server going away: SubmitBuild gets
org.buildyard.Error.Internal within a bound instead of hanging, an end
that cannot be stored waits in memory (STATUS= says so), nothing submitted
is lost, and it all goes on once the server is back."""

import os
import signal
import time
import unittest

from harness import (MASTER_PATH, bus_error, gate_step, master_ini, open_gate,
                     start_master_env, wait_for, wait_gate_reached)
from pg_system_test import PgSystemTest

MASTER1 = "org.buildyard.Master1"
SUBMIT = (f"{MASTER1}.SubmitBuild", "string:quick", "dict:string:string:")


class OnPostgres(PgSystemTest):
    def config(self, database_lines):
        s = self.sys
        s.write_config(master_ini(["w1"], {"gated": (["w1"], [gate_step(s)]), "quick": (["w1"], ["true"])},
                                  master_lines=database_lines))

    def failed_start(self, env=None):
        p = start_master_env(self.sys, env or {}, wait_ready=False)
        self.assertNotEqual(p.wait(30), 0)
        return p.log()

    def backends(self):
        """The server's processes: the postmaster and its children."""
        pids = [self.pg.proc.pid]
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == self.pg.proc.pid:
                        pids.append(int(pid))
            except (OSError, ValueError, IndexError):
                pass
        return pids

    def stored_builds(self):
        return self.pg.psql("SELECT id || ' ' || state || ' ' || result FROM builds ORDER BY id").split("\n")

    def test_refuses_to_start_without_its_database(self):
        uri = "postgresql:///buildyard?host=/nonexistent-buildyard&port=5432"
        self.config(f"database = {uri}")
        log = self.failed_start()
        self.assertIn(f"cannot connect to PostgreSQL at {uri}: ", log)

    def test_a_password_in_the_uri_is_refused_and_never_shown(self):
        self.config("database = postgresql://by:hunter2@db.example/buildyard")
        log = self.failed_start()
        self.assertRegex(log, r"master\.ini:3: \[master\] database: the URI carries a password")
        self.assertNotIn("hunter2", log)
        self.config("database = postgresql://db.example/buildyard?sslmode=require&password=hunter2")
        log = self.failed_start()
        self.assertIn("the URI carries a password", log)
        self.assertNotIn("hunter2", log)

    def test_the_password_comes_from_a_credential_or_libpqs_password_file(self):
        pg, s = self.pg, self.sys
        pg.psql("DROP ROLE IF EXISTS byuser; CREATE ROLE byuser LOGIN PASSWORD 'pw-7f3a'; "
                "GRANT ALL ON SCHEMA public TO byuser")
        hba = os.path.join(pg.data, "pg_hba.conf")
        with open(hba) as f:
            kept = f.read()
        self.addCleanup(lambda: (open(hba, "w").write(kept), pg.proc.send_signal(signal.SIGHUP)))
        with open(hba, "w") as f:
            f.write("local all byuser scram-sha-256\n" + kept)
        pg.proc.send_signal(signal.SIGHUP)
        uri = f"postgresql:///buildyard?host={pg.sock}&port=5432&user=byuser"
        wait_for(lambda: "password" in self.failed_start_with(uri), 10, "the server to ask for a password")
        creds = self.path("creds")
        os.makedirs(creds)
        with open(os.path.join(creds, "pgpass"), "w") as f:
            f.write("pw-7f3a")
        self.config(f"database = {uri}\ndatabase_password = credential:pgpass")
        start_master_env(s, {"CREDENTIALS_DIRECTORY": creds})
        s.start_worker("w1")
        self.assertEqual(s.wait_build(s.submit("quick"), timeout=20)[1], "success")
        s.master.stop()
        passfile = self.path("pgpass")
        with open(passfile, "w") as f:
            f.write("*:*:*:byuser:pw-7f3a\n")
        os.chmod(passfile, 0o600)
        self.config(f"database = {uri}&passfile={passfile}")
        s.start_master()
        self.assertEqual(len(self.stored_builds()), 1)

    def failed_start_with(self, uri):
        self.config(f"database = {uri}")
        return self.failed_start()

    def test_a_reload_that_changes_the_database_is_refused(self):
        s = self.sys
        self.config(f"database = {self.pg.uri}")
        s.start_master()
        self.config("database = sqlite")
        out = s.run(["busctl", "--system", "call", MASTER1, MASTER_PATH, MASTER1, "Reload"], check=False)
        self.assertIn("[master] database: cannot change on reload", out.stderr)
        build = s.submit("quick")
        s.start_worker("w1")
        self.assertEqual(s.wait_build(build)[1], "success")
        self.assertEqual(self.stored_builds(), [f"{build} finished success"])

    def test_an_outage_loses_nothing_and_submissions_fail_clearly(self):
        s, pg = self.sys, self.pg
        self.config(f"database = {pg.uri}")
        s.start_master()
        w1 = s.start_worker("w1")
        done = s.submit("quick")
        self.assertEqual(s.wait_build(done)[1], "success")
        build = s.submit("gated")
        wait_gate_reached(s, build)

        pg.outage()
        t0 = time.monotonic()
        self.assertEqual(bus_error(s, MASTER_PATH, *SUBMIT), "org.buildyard.Error.Internal")
        self.assertLess(time.monotonic() - t0, 5)
        # The build ends while nothing can store it: it stays running, in
        # memory as in the database, and STATUS= says why.
        open_gate(s, build)
        wait_for(lambda: "the master did not take the result of build" in w1.log(), 15, "the worker to be told")
        self.assertEqual(s.build_prop(build, "State"), "running")
        wait_for(lambda: [m for m in s.master.messages if "STATUS=" in m and "cannot write the state database" in m],
                 10, "STATUS= with the failure")

        pg.start()
        self.assertEqual(s.wait_build(build, timeout=15)[1], "success")
        after = s.submit("quick")
        self.assertEqual(s.wait_build(after)[1], "success")
        wait_for(lambda: self.stored_builds() == [f"{done} finished success", f"{build} finished success",
                                                  f"{after} finished success"], 10, "every build stored")
        wait_for(lambda: "cannot write" not in [m for m in s.master.messages if "STATUS=" in m][-1], 10,
                 "STATUS= without the failure")

    def test_a_server_that_stops_answering_is_an_error_within_seconds(self):
        s, pg = self.sys, self.pg
        self.config(f"database = {pg.uri}")
        s.start_master()
        s.start_worker("w1")
        frozen = self.backends()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            self.assertEqual(bus_error(s, MASTER_PATH, *SUBMIT), "org.buildyard.Error.Internal")
            # The store's deadline is 3 s a statement; a retry of the store
            # may come first.
            self.assertLess(time.monotonic() - t0, 10)
            self.assertIn("no answer within 3000 ms", s.master.log())
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        wait_for(lambda: isinstance(s.call(MASTER_PATH, MASTER1, "SubmitBuild", "sa{ss}", "quick", 0, check=False),
                                    list), 20, "the master to store a build again")
        wait_for(lambda: self.stored_builds()[-1].endswith("finished success"), 20, "the build to run")


if __name__ == "__main__":
    unittest.main()
