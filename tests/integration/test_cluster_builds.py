"""Builds in a cluster: two or three masters on one PostgreSQL server
(started by the test, tests/lib/postgresql.py), each on its own private bus
and loopback TCP port, with remote workers over TLS that list every master
(their own first) and trust the one CA that signed the masters'
certificates.

- A build submitted to a master with no worker free runs on another
  master's worker, woken by LISTEN/NOTIFY; its log reads the same from both.
  That master queues it from the row announced with it, or, for a row too
  big for a NOTIFY, from the shared queue.
- A worker attached to one master is not missing on the others
  (Worker1.Master names where it is), and its loss is mailed once for the
  cluster.
- kill -9 of a master in the middle of 200 running and pending builds:
  every request ends in exactly one successful build, no request runs twice
  at the same time (each step holds a lock of its request for as long as it
  runs, and records it when it cannot take it), and the builds that were
  running are rerun within cluster_timeout plus 5 s.
- A master frozen with SIGSTOP past cluster_timeout and then continued is
  fenced: the end its worker reported meanwhile is not recorded, and the
  build's rerun elsewhere stands. (Its worker keeps running a build while
  its master is frozen: that is why keepalive_timeout should be below
  cluster_timeout; here the rerun's worker attaches only once the first
  run ended.)"""

import os
import re
import signal
import time

from harness import MASTER_PATH, System, free_port, master_ini, wait_for
from pg_system_test import PgSystemTest
from tlslib import CA

HEARTBEAT = 1
TIMEOUT = 3

# The step: takes its request's lock without waiting (a second run of the
# request at the same time cannot, and says so), records its start and end
# under the lock of the events file, and sleeps or waits for a file between.
STEP = r'''
import fcntl, os, sys, time
d, req, pause = sys.argv[1], os.environ["BUILDYARD_PROP_req"], sys.argv[2]
build = os.environ.get("BUILDYARD_BUILD_ID", "?")
def record(what):
    with open(os.path.join(d, "events"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(f"{what} {req} {build} {time.time():.3f}\n")
lock = open(os.path.join(d, f"req-{req}.lock"), "w")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    record("overlap")
    sys.exit(3)
record("start")
print(f"request {req} ran", flush=True)
if pause.startswith("/"):
    while not os.path.exists(pause):
        time.sleep(0.05)
else:
    time.sleep(float(pause))
record("end")
'''


class Cluster(PgSystemTest):
    """self.masters: the Systems, the first one PgSystemTest's own."""

    def setUp(self):
        super().setUp()
        self.masters = [self.sys]
        self.step = self.path("step.py")
        with open(self.step, "w") as f:
            f.write(STEP)
        self.events_dir = self.path("events.d")
        os.makedirs(self.events_dir)

    def start_masters(self, n, workers, pause, max_builds=1, later=(), worker_lines="", master_lines="",
                      database=None, debug=False, local=()):
        """n masters m0..m(n-1), each declaring every worker of `workers`
        ({master index: [names]}) and of `later` (started by the test), and
        the builder `b` on all of them; the workers start on their master's
        port. `database`: the URI the masters use, if not the server's own;
        `debug`: the masters log at level debug; `local`: local workers,
        declared by every master and started by the test."""
        while len(self.masters) < n:
            s = System()
            self.addCleanup(s.close)
            s.start_bus()
            self.masters.append(s)
        if debug:
            for s in self.masters:
                s.env["BUILDYARD_LOG_LEVEL"] = "debug"  # their workers' too: they share the System's env
        names = [w for ws in workers.values() for w in ws] + list(later)
        declared = {w: f"password = pw-{w}\nmax_builds = {max_builds}\n{worker_lines}" for w in names}
        declared.update({w: f"type = local\nmax_builds = {max_builds}\n" for w in local})
        names += list(local)
        builder = {"b": (names, [f"/usr/bin/python3 {self.step} {self.events_dir} {pause}"])}
        self.ports = []
        # One CA signs every master's certificate, as an admin would do for
        # a cluster: a worker trusts it (tls_ca_file) whichever it reaches.
        self.ca = CA(self.sys.dir)
        for i, s in enumerate(self.masters):
            port = free_port()
            self.ports.append(port)
            cert, key = self.ca.issue(f"m{i}", "127.0.0.1")
            s.write_config(master_ini(declared, builder, name=f"m{i}", listen=f"127.0.0.1:{port}",
                                      worker_type=None,
                                      master_lines=f"cluster_heartbeat = {HEARTBEAT}\ncluster_timeout = {TIMEOUT}\n"
                                                   f"tls_certificate = {cert}\ntls_key = {key}\n" + master_lines))
            s.write_config(f"[master]\ndatabase = {database or self.pg.uri}\n", "zzz-cluster.ini")
            s.start_master()
        for i, ws in workers.items():
            for w in ws:
                self.remote_worker(self.masters[i], w, self.ports[i])

    def remote_worker(self, s, name, port=None):
        """A remote worker that lists every master, `s` first, and trusts
        the CA that signed their certificates."""
        order = [self.masters.index(s)] + [i for i in range(len(self.masters)) if self.masters[i] is not s]
        masters = ", ".join(f"127.0.0.1:{self.ports[i]}" for i in order)
        path = os.path.join(s.dir, "etc", "workers", f"{name}.ini")
        with open(path, "w") as f:
            f.write(f"master = {masters}\npassword = pw-{name}\nreconnect_max = 1\ntls_ca_file = {self.ca.path}\n")
        return s.start_worker(name, config=path)

    def events(self):
        try:
            with open(os.path.join(self.events_dir, "events")) as f:
                return [line.split() for line in f.read().splitlines()]
        except FileNotFoundError:
            return []

    def sql(self, query):
        return self.pg.psql(query)

    def rows(self, query):
        out = self.sql(query)
        return [line.split("|") for line in out.splitlines() if line]


class SharedQueue(Cluster):
    def test_a_build_submitted_where_no_worker_is_free_runs_on_another_master(self):
        # m0 has no worker attached; m1 has w1.
        self.start_masters(2, {1: ["w1"]}, "0")
        for _ in range(3):
            build = self.masters[0].submit("b", req="x")
            _, result = self.masters[0].wait_build(build, 15)
            self.assertEqual(result, "success")
            self.assertEqual(self.masters[0].build_prop(build, "Worker"), "w1")
            self.assertEqual(self.sql(f"SELECT master FROM builds WHERE id = {build}"), "m1")
            # Its log, saved by m1, reads the same from both.
            log = self.masters[1].read_log(build)
            self.assertIn("request x ran\n", log)
            wait_for(lambda: self.masters[0].read_log(build) == log, 5, "the log on m0")
        self.assertEqual([e[0] for e in self.events()], ["start", "end"] * 3)

    def test_a_build_is_pulled_from_its_announcement_or_from_the_queue_when_too_big(self):
        # m0 has no worker attached; m1 has w1. m1 hears a new build's row
        # with its announcement and queues it from there; a build whose row
        # does not fit in a NOTIFY (more than 7,999 bytes) is announced by
        # its builder alone, and m1 reads it from the shared queue. A small
        # build that comes while m1 is reading that queue anyway (as it does
        # once its LISTEN is answered) is pulled from there too: of three
        # small builds, one at a time, at least one must come from its row.
        self.start_masters(2, {1: ["w1"]}, "0", debug=True)
        wait_for(lambda: int(self.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")) >= 2,
                 10, "both masters to listen")
        small = []
        for _ in range(3):
            small.append(self.masters[0].submit("b", req="small"))
            self.assertEqual(self.masters[0].wait_build(small[-1], 15)[1], "success")
        big = self.masters[0].submit("b", req="big", filler="\u00e9" * 4500)  # 9,000 bytes in UTF-8
        self.assertEqual(self.masters[0].wait_build(big, 15)[1], "success")
        ids = ", ".join(map(str, small + [big]))
        self.assertEqual(self.rows(f"SELECT id, master, worker FROM builds WHERE id IN ({ids}) ORDER BY id"),
                         [[str(b), "m1", "w1"] for b in small + [big]])
        log = self.masters[1].master.log()
        announced = [b for b in small if f"build {b} of b queued by another master: pulled as announced\n" in log]
        self.assertTrue(announced, log)
        self.assertIn(f"build {big} of b queued by another master: pulled\n", log)
        self.assertNotIn(f"build {big} of b queued by another master: pulled as announced", log)

    def test_each_request_runs_once_when_every_master_takes_from_one_queue(self):
        self.start_masters(3, {0: ["w0"], 1: ["w1"], 2: ["w2"]}, "0", max_builds=2)
        submitted = []
        for i in range(60):
            submitted.append(self.masters[0].submit("b", req=str(i)))
        wait_for(lambda: self.sql("SELECT count(*) FROM builds WHERE state <> 'finished'") == "0", 60,
                 "every build to finish")
        done = self.rows("SELECT id, result, master FROM builds ORDER BY id")
        self.assertEqual(sorted(int(r[0]) for r in done), sorted(submitted), "no build ran twice: no retries")
        self.assertEqual({r[1] for r in done}, {"success"})
        self.assertGreater(len({r[2] for r in done}), 1, "more than one master ran them: %s" % done)
        self.assertNotIn("overlap", [e[0] for e in self.events()])


class OneView(Cluster):
    def test_every_master_lists_reads_and_cancels_the_clusters_builds(self):
        gate = self.path("gate")
        self.start_masters(2, {1: ["w1"]}, gate)
        m0, m1 = self.masters
        running = m1.submit("b", req="running")
        wait_for(lambda: m1.build_prop(running, "State") == "running", 10, "the first build to start")
        pending = m1.submit("b", req="pending")
        # m0, which has no worker, sees both as they are.
        listed = {b[0]: b[1:5] for b in m0.call(MASTER_PATH, "org.buildyard.Master1", "ListBuilds", "t", 10)[0]}
        self.assertEqual(listed[running], ["b", "w1", "running", ""])
        self.assertEqual(listed[pending], ["b", "", "pending", ""])
        self.assertEqual(m0.build_prop(running, "Worker"), "w1")
        self.assertEqual(m0.build_prop(pending, "State"), "pending")
        # Cancelled from m0: the pending one in the store, the running one by m1.
        m0.call(m0.build_path(pending), "org.buildyard.Build1", "Cancel")
        self.assertEqual(m0.build_prop(pending, "Result"), "cancelled")
        wait_for(lambda: m1.build_prop(pending, "Result") == "cancelled", 5, "m1 to drop the pending build")
        m0.call(m0.build_path(running), "org.buildyard.Build1", "Cancel")
        wait_for(lambda: m0.build_prop(running, "Result") == "cancelled", 10, "m1 to cancel the running build")
        self.assertIn(f"asked the master that runs build {running} of b to cancel it", m0.master.log())
        self.assertEqual(m1.build_prop(pending, "State"), "finished")
        time.sleep(1)
        self.assertEqual([e[0] for e in self.events()], ["start"], "the pending build never ran")


class Presence(Cluster):
    def test_a_worker_on_another_master_is_not_missing_and_its_loss_is_mailed_once(self):
        # Mail goes nowhere (nothing listens there): it stays queued, and
        # the queue in the database is what counts.
        mail = f"[mail]\nfromaddr = buildyard@ci.example.org\nrelayhost = 127.0.0.1\nport = {free_port()}\n"
        self.start_masters(2, {1: ["w1"]}, "0", worker_lines="missing_timeout = 2\nnotify_on_missing = ops@example.org\n",
                           master_lines=mail)
        self.assertEqual(self.masters[1].worker_prop("w1", "Master"), "m1")
        wait_for(lambda: self.masters[0].worker_prop("w1", "Master") == "m1", HEARTBEAT + 3, "m0 to see w1 on m1")
        self.assertFalse(self.masters[0].worker_prop("w1", "Connected"))
        time.sleep(3)
        self.assertEqual(self.sql("SELECT count(*) FROM mail_queue"), "0", "attached to m1: missing nowhere")
        self.assertEqual(self.masters[0].worker_prop("w1", "MissingSince"), 0)
        # w1 is lost: one mail for the cluster, whichever master queues it.
        self.masters[1].workers["w1"].signal(signal.SIGKILL)
        wait_for(lambda: self.sql("SELECT count(*) FROM mail_queue WHERE worker = 'w1'") == "1", 10, "the mail")
        wait_for(lambda: self.masters[0].worker_prop("w1", "Master") == "", HEARTBEAT + 3, "m0 to see w1 gone")
        time.sleep(2 * HEARTBEAT + 1)
        self.assertEqual(self.sql("SELECT count(*) FROM mail_queue WHERE worker = 'w1'"), "1")
        logs = self.masters[0].master.log() + self.masters[1].master.log()
        # Mail ids come from a sequence that a rolled-back attempt uses up.
        queued = len(re.findall(r"has been missing since .*; mail \d+ to ops@example.org queued", logs))
        self.assertEqual(queued, 1, logs)
        self.assertEqual(logs.count("has been missing since"),
                         queued + logs.count("another master of the cluster mailed it"), logs)
        for s in self.masters:
            self.assertTrue(s.worker_prop("w1", "MissingNotified"))
            self.assertEqual(s.worker_prop("w1", "MissingSince"), self.masters[1].worker_prop("w1", "MissingSince"))


class Failover(Cluster):
    def test_kill_9_of_a_master_with_200_builds_loses_none_and_runs_none_twice(self):
        workers = {i: [f"w{i}a", f"w{i}b"] for i in range(3)}
        self.start_masters(3, workers, "0.5", max_builds=2)
        submitted = []
        killed = None

        def running_on_m0():
            return int(self.sql("SELECT count(*) FROM builds WHERE master = 'm0' AND state = 'running'"))

        for i in range(200):
            if i == 120:
                # In the middle: once m0's workers are busy, kill it; the
                # rest go to the others. If the masters kept up with the
                # submissions (a slow client, a sanitizer's master), m0 may
                # be idle now: more go to it, which a free worker of its
                # starts at once, until two run there.
                deadline = time.monotonic() + 30
                extra = 0
                while running_on_m0() < 2:
                    self.assertLess(time.monotonic(), deadline, "no two builds running on m0")
                    if extra < 10:
                        submitted.append(self.masters[0].submit("b", req=f"extra{extra}"))
                        extra += 1
                    time.sleep(0.05)
                self.masters[0].master.signal(signal.SIGKILL)
                killed = time.time()
                self.masters[0].master.wait()
                running = [int(r[0]) for r in
                           self.rows("SELECT id FROM builds WHERE master = 'm0' AND state = 'running'")]
            submitted.append(self.masters[i % 3 if killed is None else 1 + i % 2].submit("b", req=str(i)))
        self.assertTrue(running)
        wait_for(lambda: self.sql("SELECT count(*) FROM builds WHERE state <> 'finished'") == "0", 120,
                 "every build to finish")
        # Every request: exactly one success.
        rows = self.rows("SELECT CASE WHEN request_id = 0 THEN id ELSE request_id END, result, id, retried_as, "
                         "started_at FROM builds ORDER BY id")
        successes = {}
        for request, result, _, _, _ in rows:
            if result == "success":
                successes[int(request)] = successes.get(int(request), 0) + 1
        self.assertEqual(sorted(successes), sorted(submitted))
        self.assertEqual(set(successes.values()), {1})
        self.assertNotIn("overlap", [e[0] for e in self.events()])
        # The builds running on m0 were rerun elsewhere, in time.
        by_id = {int(r[2]): r for r in rows}
        for build in running:
            old = by_id[build]
            self.assertEqual(old[1], "retry")
            rerun = by_id[int(old[3])]
            started = int(rerun[4]) / 1e6
            self.assertLess(started - killed, TIMEOUT + 5, f"build {build} rerun as {old[3]} started late")
        # m0's workers list every master: they moved to a live one.
        for w in workers[0]:
            seen = []
            try:
                wait_for(lambda: seen.append(self.masters[1].worker_prop(w, "Master")) or seen[-1] in ("m1", "m2"),
                         10, f"{w} on a live master")
            except AssertionError as e:
                p = self.masters[0].workers[w]
                raise AssertionError(f"{e}: Master was {seen[-1]!r}; {w}: {p.describe()}; its log:\n{p.log()}")
        takeover = [s.master.log() for s in self.masters[1:]]
        self.assertEqual(sum(log.count("declared master 'm0' dead") for log in takeover), 1)
        self.assertTrue(any(f"took over its {len(running)} running builds" in log for log in takeover), takeover)


class Fencing(Cluster):
    def test_a_frozen_master_is_fenced_and_what_it_sends_after_is_not_recorded(self):
        gate = self.path("gate")
        self.start_masters(2, {0: ["w0"]}, gate, later=["w1"])
        build = self.masters[0].submit("b", req="frozen")
        wait_for(lambda: self.sql(f"SELECT state FROM builds WHERE id = {build}") == "running", 15, "the build")
        self.assertEqual(self.rows(f"SELECT worker, master FROM builds WHERE id = {build}"), [["w0", "m0"]])
        self.masters[0].master.signal(signal.SIGSTOP)
        self.addCleanup(lambda: self.masters[0].master.signal(signal.SIGCONT))
        # m1 declares m0 dead and queues the build's rerun.
        wait_for(lambda: self.sql(f"SELECT result FROM builds WHERE id = {build}") == "retry", TIMEOUT + 5,
                 "the takeover")
        rerun = int(self.sql(f"SELECT retried_as FROM builds WHERE id = {build}"))
        finished_at = self.sql(f"SELECT finished_at FROM builds WHERE id = {build}")
        # The first run ends while its master is frozen: its end waits in
        # the frozen master's socket.
        open(gate, "w").close()
        wait_for(lambda: [e[0] for e in self.events()] == ["start", "end"], 10, "the first run's end")
        # Then a worker of m1's runs the rerun.
        self.remote_worker(self.masters[1], "w1", self.ports[1])
        wait_for(lambda: self.sql(f"SELECT result FROM builds WHERE id = {rerun}") == "success", 20, "the rerun")
        self.assertEqual(self.sql(f"SELECT worker FROM builds WHERE id = {rerun}"), "w1")
        self.masters[0].master.signal(signal.SIGCONT)
        wait_for(lambda: "joined the cluster again as 'm0'" in self.masters[0].master.log(), 10, "the rejoin")
        wait_for(lambda: f"build {build} of b on w0 is let go without a record" in self.masters[0].master.log(),
                 10, "the late end let go")
        self.assertIn("this master was fenced", self.masters[0].master.log())
        time.sleep(1)
        self.assertEqual(self.rows(f"SELECT state, result, finished_at, master FROM builds WHERE id = {build}"),
                         [["finished", "retry", finished_at, "m0"]], "nothing the fenced master sent was recorded")
        self.assertEqual(self.sql(f"SELECT result FROM builds WHERE id = {rerun}"), "success")
        self.assertEqual([e[0] for e in self.events()], ["start", "end", "start", "end"])
        # The log other masters read is the rerun's, saved by m1.
        wait_for(lambda: self.sql(f"SELECT master FROM build_logs WHERE build = {rerun}") == "m1", 10, "the rerun's log")

    def test_a_master_its_heartbeat_finds_fenced_shares_no_log_of_what_it_let_go(self):
        # The run still goes on, on a local worker, when its frozen master
        # wakes: the heartbeat finds the master fenced, it lets the build go
        # (and cancels it on its worker), and joins again. With no remote
        # worker to close, its next dispatch, which saves the logs it
        # queued, comes after it joined, under its new fence; the let-go
        # run's log is not among them.
        gate = self.path("gate")
        self.start_masters(2, {}, gate, local=["l0"])
        self.masters[0].start_worker("l0")
        build = self.masters[0].submit("b", req="frozen")
        wait_for(lambda: self.sql(f"SELECT state FROM builds WHERE id = {build}") == "running", 15, "the build")
        self.masters[0].master.signal(signal.SIGSTOP)
        self.addCleanup(lambda: self.masters[0].master.signal(signal.SIGCONT))
        wait_for(lambda: self.sql(f"SELECT result FROM builds WHERE id = {build}") == "retry", TIMEOUT + 5,
                 "the takeover")
        self.masters[0].master.signal(signal.SIGCONT)
        wait_for(lambda: "joined the cluster again as 'm0'" in self.masters[0].master.log(), 10, "the rejoin")
        self.assertIn(f"build {build} of b on l0 is let go without a record", self.masters[0].master.log())
        time.sleep(1)  # its next dispatch, which saves what it queued, comes at once
        self.assertEqual(self.sql(f"SELECT count(*) FROM build_logs WHERE build = {build}"), "0",
                         "the log of the run the fenced master let go")
