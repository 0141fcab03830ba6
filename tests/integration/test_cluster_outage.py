"""PostgreSQL restarted under load, in a cluster of three masters with
remote workers (test_cluster_builds.Cluster): while a steady stream of
submissions goes to every master in turn, the server stops (a fast shutdown, every
connection cut) for longer than cluster_timeout, then starts again on the
same data.

- Each SubmitBuild made while the server is away fails within a bound with
  org.buildyard.Error.Internal, whose message says the build could not be
  recorded and why (the database's trouble); none hangs.
- Every master reconnects: its heartbeats and LISTEN come back (it logs
  so), STATUS= drops the trouble, and ListClusterMembers on each shows
  all live with their fences of before: none declared another dead
  merely because nobody could heartbeat while the database was away.
- Every build whose SubmitBuild succeeded ends in exactly one successful
  build, no request runs twice at the same time, and the builds running
  when the server stopped end well (their ends wait in memory) or are
  rerun exactly once.

And a commit whose answer never came (pg_relay.PgRelay drops it): a
submission a free worker takes at once is inserted and started in one
commit, which the server makes; the master, past its deadline, tells the
client it failed. Once the database answers again the master finds the
build recorded started here with nothing running it, makes it pending,
and runs it once. A build's end committed that way is found ended by this
very write, and ends as recorded."""

import re
import threading
import time

from harness import MASTER, MASTER_PATH, wait_for
from pg_relay import PgRelay
from test_cluster_builds import TIMEOUT, Cluster

from postgresql import PORT  # tests/lib, on the path once pg_system_test is imported

MASTER1 = "org.buildyard.Master1"
MASTERS = 3
OUTAGE = TIMEOUT + 3  # seconds: past cluster_timeout
BOUND = 10  # seconds a SubmitBuild may take while the server is away
COUNT = 120  # submissions at most
PERIOD = 0.1  # seconds between two submissions


def members(s):
    rows = s.call(MASTER_PATH, MASTER1, "ListClusterMembers")[0]
    return {r[0]: {"state": r[1], "fence": r[2]} for r in rows}


class Submitter(threading.Thread):
    """Submits to the masters in turn, one every PERIOD, until stopped or
    COUNT; records each call: (start, end, master index, request, build path
    or None, error name, message), times from time.monotonic()."""

    def __init__(self, masters):
        super().__init__(daemon=True)
        self.masters = masters
        self.calls = []
        self.halt = threading.Event()

    def run(self):
        for i in range(COUNT):
            if self.halt.is_set():
                return
            m = i % len(self.masters)
            t0 = time.monotonic()
            r = self.masters[m].run(["dbus-send", "--system", "--print-reply", "--reply-timeout=60000",
                                     f"--dest={MASTER}", MASTER_PATH, f"{MASTER1}.SubmitBuild",
                                     "string:b", f"dict:string:string:req,{i}"], check=False, timeout=90)
            t1 = time.monotonic()
            if r.returncode == 0:
                path = re.search(r'object path "([^"]+)"', r.stdout).group(1)
                self.calls.append((t0, t1, m, i, path, None, ""))
            else:
                name, _, message = r.stderr.strip().partition(": ")
                self.calls.append((t0, t1, m, i, None, name.removeprefix("Error "), message))
            self.halt.wait(max(0.0, PERIOD - (t1 - t0)))


class Outage(Cluster):
    def test_a_restart_of_postgresql_under_load_loses_nothing_and_declares_nobody_dead(self):
        workers = {i: [f"w{i}a", f"w{i}b"] for i in range(MASTERS)}
        self.start_masters(MASTERS, workers, "0.4")
        fences = {name: m["fence"] for name, m in members(self.masters[0]).items()}
        self.assertEqual(set(fences), {f"m{i}" for i in range(MASTERS)})

        submitter = Submitter(self.masters)
        submitter.start()
        self.addCleanup(submitter.halt.set)
        # Load first: builds running on every master.
        time.sleep(1.5)
        wait_for(lambda: int(self.sql("SELECT count(DISTINCT master) FROM builds WHERE state = 'running'")) == MASTERS,
                 20, "builds running on every master")
        running = [int(r[0]) for r in self.rows("SELECT id FROM builds WHERE state = 'running'")]
        stopping = time.monotonic()
        self.pg.outage()
        down = time.monotonic()
        # The server is away past cluster_timeout, submissions going on.
        time.sleep(OUTAGE)
        up = time.monotonic()
        self.pg.start()
        back = time.monotonic()
        # A few more submissions once it is back, then the stream stops.
        time.sleep(4)
        submitter.halt.set()
        submitter.join(BOUND + 5)
        self.assertFalse(submitter.is_alive(), "a SubmitBuild hung")
        calls = submitter.calls

        # During the outage: a named error within the bound, never a hang.
        during = [c for c in calls if c[0] >= down and c[1] <= up]
        self.assertGreaterEqual(len(during), 2, calls)
        for t0, t1, m, req, path, error, message in during:
            self.assertIsNone(path, f"request {req} submitted to m{m} while the server was away")
            self.assertEqual(error, "org.buildyard.Error.Internal", message)
            self.assertIn("cannot record the build: ", message)
            # One build alone is one insert; one that a free worker would
            # take at once goes in one commit with its start.
            self.assertRegex(message, r"cannot (insert a build|commit the submitted builds): "
                                      r".*(connection|server|database system)")
        for t0, t1, m, req, path, error, message in calls:
            self.assertLess(t1 - t0, BOUND, f"SubmitBuild of request {req} to m{m} took {t1 - t0:.1f} s: {message}")
        # Before and well after it, every submission was taken.
        before = [c for c in calls if c[1] < stopping]
        self.assertTrue(before)
        after = [c for c in calls if c[0] > back + 2]
        self.assertTrue(after, calls)
        for t0, t1, m, req, path, error, message in before + after:
            self.assertIsNotNone(path, f"request {req} to m{m}: {error}: {message}")
        submitted = {c[3]: c[4] for c in calls if c[4]}

        # Every build whose SubmitBuild succeeded ends in one success.
        wait_for(lambda: self.sql("SELECT count(*) FROM builds WHERE state <> 'finished'") == "0", 40,
                 "every build to finish")
        rows = self.rows("SELECT id, CASE WHEN request_id = 0 THEN id ELSE request_id END, result, retried_as, "
                         "requested::json->>'req' FROM builds ORDER BY id")
        by_id = {int(r[0]): r for r in rows}
        # The stored requests are those whose SubmitBuild succeeded, each
        # under the id its reply named.
        self.assertEqual(sorted(int(r[4]) for r in rows if r[0] == r[1]), sorted(submitted))
        for req, path in submitted.items():
            build = int(self.masters[0].get(path, "org.buildyard.Build1", "Id"))
            self.assertEqual(by_id[build][4], str(req))
            self.assertEqual(by_id[build][1], str(build))
        successes = {}
        for _, _, result, _, req in rows:
            if result == "success":
                successes[int(req)] = successes.get(int(req), 0) + 1
        self.assertEqual(successes, {req: 1 for req in submitted}, rows)
        self.assertNotIn("overlap", [e[0] for e in self.events()])
        # A build that did not succeed is a retry, rerun once.
        for build, _, result, retried_as, req in rows:
            self.assertIn(result, ("success", "retry"), f"build {build} of request {req}")
        for build in running:
            first = by_id[build]
            if first[2] == "retry":
                self.assertEqual(by_id[int(first[3])][2], "success", f"the rerun of build {build}")

        # Every master came back, and nobody was declared dead.
        logs = [s.master.log() for s in self.masters]
        for i, log in enumerate(logs):
            self.assertIn("this master's heartbeat is recorded again", log, f"m{i}")
            # It was away past cluster_timeout, as the database's clock tells.
            self.assertRegex(log, r"this master's heartbeat came [0-9.]+ s after the previous one, past "
                                  r"cluster_timeout", f"m{i}")
            self.assertIn("listening again for the other masters' builds", log, f"m{i}")
            self.assertIn("notice: the state database takes writes again", log, f"m{i}")
            self.assertNotIn("declared master", log, f"m{i}")
            self.assertNotIn("this master was fenced", log, f"m{i}")
        for i, s in enumerate(self.masters):
            self.assertTrue([m for m in s.master.messages if "STATUS=" in m and "cannot write the state database" in m],
                            f"STATUS= of m{i} with the trouble")
            wait_for(lambda: "cannot write" not in [m for m in s.master.messages if "STATUS=" in m][-1], 10,
                     f"STATUS= of m{i} without the trouble")
            self.assertEqual(members(s), {name: {"state": "live", "fence": fence} for name, fence in fences.items()},
                             f"the members as m{i} sees them")
        self.assertEqual(self.rows("SELECT name, status, declared_dead_by FROM masters ORDER BY name"),
                         [[f"m{i}", "joined", ""] for i in range(MASTERS)])


class LostAnswer(Cluster):
    def submit_unanswered(self, relay, s, marker, req):
        """SubmitBuild of `req` to `s` while the relay drops the answer to
        the statement named `marker`: the client is told it failed, and
        that the database may have recorded it all the same."""
        relay.lose_answers_after(marker + b"\0")
        t0 = time.monotonic()
        r = s.run(["dbus-send", "--system", "--print-reply", "--reply-timeout=60000", f"--dest={MASTER}",
                   MASTER_PATH, f"{MASTER1}.SubmitBuild", "string:b", f"dict:string:string:req,{req}"],
                  check=False, timeout=90)
        self.assertLess(time.monotonic() - t0, BOUND, "the master gives up at its deadline")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("org.buildyard.Error.Internal", r.stderr)
        self.assertRegex(r.stderr, r"cannot record the build: .*no answer within 3000 ms; the database may have "
                                   r"recorded it all the same, and then it runs: look for it before submitting it "
                                   r"again")

    def master_behind_relay(self):
        """One master, m0 with the worker w0, that reaches the server
        through a PgRelay; its builds wait for the gate. Returns (relay,
        its System, the gate's path)."""
        relay = PgRelay(self.path("relay"), self.pg.sock, PORT)
        self.addCleanup(relay.close)
        uri = self.pg.uri.replace(f"host={self.pg.sock}", f"host={relay.directory}")
        gate = self.path("gate")
        self.start_masters(1, {0: ["w0"]}, gate, database=uri)
        s = self.masters[0]
        s.wait_attached("w0")
        return relay, s, gate

    def state_of(self, req):
        return self.sql(f"SELECT state || ' ' || master || ' ' || worker FROM builds "
                        f"WHERE requested::json->>'req' = '{req}'")

    def test_an_end_committed_without_an_answer_is_that_end(self):
        """The server commits a build's end, whose answer never comes: the
        master's next try finds the build ended, by this very write, and
        ends it as recorded (success), not as a build another master took
        away (retry, with no rerun anywhere)."""
        relay, s, gate = self.master_behind_relay()
        build = s.submit("b", req="end")
        wait_for(lambda: [e[1] for e in self.events() if e[0] == "start"] == ["end"], 10, "the build to run")
        relay.lose_answers_after(b"update_build\0")
        with open(gate, "w"):
            pass
        wait_for(lambda: f"build {build} of b on w0 finished:" in s.master.log() or
                 f"build {build} of b ends retry" in s.master.log() or "let go" in s.master.log(), 30, "the end")
        log = s.master.log()
        self.assertEqual(relay.muted, 1)
        self.assertIn(f"build {build} of b on w0 finished: success (exit status 0)", log)
        self.assertIn(f"the end of build {build} was recorded in a commit whose answer never came", log)
        self.assertNotIn("let go", log)
        self.assertEqual(self.rows(f"SELECT state, result, retried_as FROM builds WHERE id = {build}"),
                         [["finished", "success", "0"]])
        self.assertEqual(s.build_prop(build, "Result"), "success")
        wait_for(lambda: "cannot write" not in [m for m in s.master.messages if "STATUS=" in m][-1], 10,
                 "STATUS= without the failure")

    def test_builds_committed_without_an_answer_run_once(self):
        relay, s, gate = self.master_behind_relay()

        # w0 busy: a submission is only inserted, pending (insert_build),
        # and announced to the other masters alone.
        s.submit("b", req="first")
        wait_for(lambda: [e[1] for e in self.events() if e[0] == "start"] == ["first"], 10, "the first build to run")
        self.submit_unanswered(relay, s, b"insert_build", "pending")
        self.assertEqual(relay.muted, 1)
        self.assertEqual(self.state_of("pending").strip(), "pending", "the server committed it (w0 is busy)")
        # The first build's end is the next write: then the master pulls it.
        with open(gate, "w"):
            pass
        wait_for(lambda: self.sql("SELECT count(*) FROM builds WHERE state <> 'finished'") == "0", 20,
                 "the pending build to run")

        # w0 free: the submission is inserted and started in one commit
        # (insert_build_quiet). The master writes nothing more, and its
        # heartbeat finds the build that nothing runs.
        self.submit_unanswered(relay, s, b"insert_build_quiet", "started")
        self.assertEqual(relay.muted, 2)
        # The server committed it (the heartbeat may have found and run it already).
        self.assertEqual(self.sql("SELECT count(*) FROM builds WHERE requested::json->>'req' = 'started'"), "1")
        wait_for(lambda: self.sql("SELECT count(*) FROM builds WHERE state <> 'finished'") == "0", 20,
                 "the started build to run on the idle master")

        self.assertEqual(self.rows("SELECT requested::json->>'req', result FROM builds ORDER BY id"),
                         [["first", "success"], ["pending", "success"], ["started", "success"]])
        events = self.events()
        self.assertEqual([e[1] for e in events if e[0] == "start"], ["first", "pending", "started"])
        self.assertNotIn("overlap", [e[0] for e in events])
        self.assertRegex(s.master.log(), r"build \d+ of b was recorded started by this master in a commit whose "
                                         r"answer never came, and nothing runs it; it is pending again")
