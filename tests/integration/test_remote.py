"""Remote workers over TCP: the handshake and its failures, builds over the
connection, losing it, keepalives, duplicate connections, bad input, the
failure throttle and socket activation, all over TLS (the default). Real
master, real workers, a private bus for the master's public face, and TCP
on 127.0.0.1."""

import hashlib
import os
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import unittest

from harness import (BIN, MASTER_PATH, RemoteLinkTest, SignalMonitor, free_port, gate_step, master_fingerprint,
                     master_ini, open_gate, wait_for, wait_gate_reached)
from tlslib import tls_client_context, tls_connect

CLIENT = os.path.join(BIN, "remote-client")


def master_config(port, workers=None, builders=None, listen=None, master_lines=""):
    """master.ini: workers as {name: extra lines}, builders as {name: (workers, [steps])},
    `master_lines` more lines of [master]."""
    listen = f"127.0.0.1:{port}" if listen is None else listen
    workers = {name: f"password = pw-{name}\n{extra}" for name, extra in (workers or {"r1": ""}).items()}
    return master_ini(workers, builders, name="it", listen=listen, worker_type=None, master_lines=master_lines)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Proxy:
    """A TCP relay on 127.0.0.1 whose connections the test can cut."""

    def __init__(self, target_port):
        self.target = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.pairs = []
        self.lock = threading.Lock()
        self.accepted = 0
        self.to_worker = 0  # bytes relayed from the master to the worker
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                a, _ = self.listener.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.pairs.append((a, b))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while True:
                ready, _, _ = select.select(socks, [], [], 0.5)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("eof")
                    if s is b:
                        with self.lock:
                            self.to_worker += len(data)
                    (b if s is a else a).sendall(data)
        except OSError:
            for s in socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self):
        """Ends every relayed connection, as a network failure would."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.cut()
        self.listener.close()


class RemoteTest(RemoteLinkTest):

    def pin(self):
        """The worker's line that pins the running master's certificate."""
        return f"master_fingerprint = {master_fingerprint(self.sys)}\n"

    def worker_file(self, name, password=None, port=None, extra="reconnect_max = 2\n"):
        path = os.path.join(self.sys.dir, "etc", "workers", f"{name}.ini")
        with open(path, "w") as f:
            f.write(f"master = 127.0.0.1:{port or self.port}\npassword = {password or 'pw-' + name}\n{extra}"
                    f"{self.pin()}")
        return path

    def remote_worker(self, name, wait_attached=True, **kw):
        self.worker_file(name, **kw)
        return self.sys.start_worker(name, wait_attached=wait_attached)

    def client(self, *args, timeout=60):
        r = subprocess.run([CLIENT, f"127.0.0.1:{self.port}", *args], capture_output=True, text=True,
                           timeout=timeout)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.split("\n")

    # --- a StartBuild lost on the way ------------------------------------

    def worker_changes(self, monitor, name):
        """[(property, value), ...] in the PropertiesChanged signals of
        worker `name`'s Worker1 object, in order (values as text)."""
        path = self.sys.worker_path(name)
        out = []
        for p, args in monitor.signals("PropertiesChanged"):
            if p != path or not args or args[0] != "org.buildyard.Worker1":
                continue
            for i, a in enumerate(args[:-1]):
                if a in ("State", "RunningBuilds"):
                    out.append((a, args[i + 1].split()[-1]))
        return out

    def swarm(self, n, first_start_error):
        """remote-client holding workers s1..sN attached (password pw),
        answering each one's first StartBuild with `first_start_error` and
        refusing later ones. Returns a function that lists the StartBuild
        calls it answered, as (worker, build id, error)."""
        out_path = os.path.join(self.sys.dir, "swarm.out")
        with open(out_path, "w") as out:
            env = dict(os.environ, REMOTE_CLIENT_FIRST_START_ERROR=first_start_error)
            swarm = subprocess.Popen([CLIENT, f"127.0.0.1:{self.port}", "swarm", str(n), "s", "pw"], env=env,
                                     stdout=out, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (swarm.kill(), swarm.wait()))
        for i in range(1, n + 1):
            self.sys.wait_attached(f"s{i}")

        def given():
            with open(out_path) as f:
                return [tuple(line.split()[1:4]) for line in f if line.startswith("StartBuild ")]
        return given

    def test_a_start_failed_on_the_way_ends_retry_and_its_worker_says_idle(self):
        # Two remote peers whose first StartBuild fails with an error that is
        # not Buildyard's (the master sees transport trouble: the build never
        # ran, so it ends retry and reruns) and which refuse later ones
        # (Busy: an exception). Build 1 fails on one, its rerun on the other,
        # the third run is refused. Each worker must then say, in its signals
        # as well as when read, that it runs nothing.
        s = self.sys
        self.start(f"[master]\nname = it\nlisten = 127.0.0.1:{self.port}\n\n"
                   "[worker s1]\npassword = pw\n\n[worker s2]\npassword = pw\n\n"
                   "[builder b]\nworkers = s1, s2\nstep.1 = true\n")
        monitor = SignalMonitor(s, "type=signal,member=PropertiesChanged")
        given = self.swarm(2, "org.freedesktop.DBus.Error.NoReply")

        first = s.submit("b")
        final, result = s.wait_build(first, follow_retry=True)
        self.assertEqual(result, "exception")
        self.assertEqual(s.build_prop(first, "Result"), "retry")
        second = int(s.build_prop(first, "RetriedAs"))
        self.assertEqual(s.build_prop(second, "Result"), "retry")
        self.assertEqual(int(s.build_prop(second, "RetriedAs")), final)
        # The failed starts went to both workers, one each.
        self.assertEqual({s.build_prop(first, "Worker"), s.build_prop(second, "Worker")}, {"s1", "s2"})
        self.assertIn("did not take build", s.read_log(first))

        for name in ("s1", "s2"):
            self.assertEqual(s.worker_prop(name, "RunningBuilds"), 0, name)
            self.assertEqual(s.worker_prop(name, "State"), "idle", name)

        # What each worker's signals said last, property by property.
        def last_said():
            return {n: dict(self.worker_changes(monitor, n)) for n in ("s1", "s2")}
        want = {n: {"State": "idle", "RunningBuilds": "0"} for n in ("s1", "s2")}
        try:
            wait_for(lambda: last_said() == want, 10, "both workers to signal State idle and RunningBuilds 0")
        except AssertionError:
            self.fail(f"the workers' signals last said {last_said()}")
        # Each worker signalled the build it was given, then its end.
        for name in ("s1", "s2"):
            self.assertIn(("RunningBuilds", "1"), self.worker_changes(monitor, name), name)
        self.assertEqual([error for _, _, error in given()], ["org.freedesktop.DBus.Error.NoReply"] * 2 +
                         ["org.buildyard.Error.Busy"])

    def test_a_peer_that_does_not_know_StartBuild_ends_the_build_once(self):
        # A worker that answers with the bus's own "unknown method" (too old,
        # or not a Buildyard worker) will never take the build: it ends
        # exception at once instead of rerunning on that worker forever.
        self.start(f"[master]\nname = it\nlisten = 127.0.0.1:{self.port}\n\n[worker s1]\npassword = pw\n\n"
                   "[builder b]\nworkers = s1\nstep.1 = true\n")
        given = self.swarm(1, "org.freedesktop.DBus.Error.UnknownMethod")
        build = self.sys.submit("b")
        self.assertEqual(self.sys.wait_build(build), (build, "exception"))
        self.assertEqual(int(self.sys.build_prop(build, "RetriedAs")), 0)
        self.assertIn("UnknownMethod", self.sys.read_log(build))
        self.assertEqual(given(), [("s1", str(build), "org.freedesktop.DBus.Error.UnknownMethod")])
        self.assertEqual(self.sys.worker_prop("s1", "State"), "idle")

    # --- builds over TCP -------------------------------------------------

    def test_build_output_arrives_complete_and_in_order_and_cancel_works(self):
        s = self.sys
        self.start(master_config(self.port, builders={
            "big": (["r1"], ["seq -f 'line %08g' 1 400000"]),
            "slow": (["r1"], [gate_step(s)]),
            "env": (["r1"], ["echo worker=$BUILDYARD_WORKER build=$BUILDYARD_BUILD_ID"]),
        }))
        w = self.remote_worker("r1")
        self.assertEqual(s.worker_prop("r1", "State"), "idle")
        self.assertIn("host", s.worker_prop("r1", "Info"))
        self.assertTrue(self.master_lines(r"worker r1 attached \(connection tcp#\d+ from 127\.0\.0\.1:\d+"))
        w.wait_notify("READY=1")

        bid = s.submit("env")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertIn(f"worker=r1 build={bid}", s.read_log(bid))

        bid = s.submit("big")
        self.assertEqual(s.wait_build(bid, timeout=120), (bid, "success"))
        log = s.read_log(bid)
        body = log[log.index("\n") + 1:]  # after the step header
        expected = "".join(f"line {i:08d}\n" for i in range(1, 400001))
        self.assertEqual(len(body), len(expected))
        self.assertEqual(hashlib.sha256(body.encode()).hexdigest(), hashlib.sha256(expected.encode()).hexdigest())

        bid = s.submit("slow")
        wait_gate_reached(s, bid)
        s.call(s.build_path(bid), "org.buildyard.Build1", "Cancel")
        self.assertEqual(s.wait_build(bid), (bid, "cancelled"))
        self.assertTrue(w.alive())

    def test_max_builds_and_properties_on_a_remote_worker(self):
        s = self.sys
        self.start(master_config(self.port, workers={"r1": "max_builds = 1\nproperty.os = far\n"
                                                           "default_property.branch = main\n"},
                                 builders={"g": (["r1"], ["echo $BUILDYARD_PROP_os $BUILDYARD_PROP_branch",
                                                          gate_step(s)])}))
        self.remote_worker("r1")
        first, second = s.submit("g"), s.submit("g", branch="dev")
        wait_gate_reached(s, first)
        # max_builds = 1: the second waits while the first runs. Both were
        # dispatched (or not) when submitted, long before the first's step ran.
        self.assertEqual(s.build_prop(second, "State"), "pending")
        self.assertEqual(s.worker_prop("r1", "RunningBuilds"), 1)
        open_gate(s, first)
        self.assertEqual(s.wait_build(first), (first, "success"))
        wait_gate_reached(s, second)
        open_gate(s, second)
        self.assertEqual(s.wait_build(second), (second, "success"))
        self.assertIn("\nfar main\n", s.read_log(first))
        self.assertIn("\nfar dev\n", s.read_log(second))
        self.assertEqual(s.build_prop(second, "Properties"), {"os": "far", "branch": "dev", "workername": "r1"})

    def test_worker_killed_mid_build_is_rerun(self):
        s = self.sys
        # r1 stays away, so its build is rerun once lost_build_grace has passed.
        self.start(master_config(self.port, workers={"r1": "lost_build_grace = 1"},
                                 builders={"slow": (["r1"], [gate_step(s)])}))
        w = self.remote_worker("r1")
        bid = s.submit("slow")
        wait_gate_reached(s, bid)
        w.signal(signal.SIGKILL)
        w.wait()
        self.assertEqual(s.wait_build(bid), (bid, "retry"))
        s.wait_attached("r1", False)
        rerun = int(s.build_prop(bid, "RetriedAs"))
        self.remote_worker("r1")
        wait_gate_reached(s, rerun)
        open_gate(s, rerun)
        self.assertEqual(s.wait_build(rerun), (rerun, "success"))

    def test_a_stopped_worker_detaches_with_its_reason_at_once(self):
        # SIGTERM: the worker says Detach over its link (through TLS) and
        # exits; the master logs the worker's reason, not a lost connection.
        s = self.sys
        self.start(master_config(self.port))
        w = self.remote_worker("r1")
        start = time.monotonic()
        w.signal(signal.SIGTERM)
        w.wait()
        took = time.monotonic() - start
        self.assertNotIn("Detach from the master", w.log())
        self.assertTrue(self.master_lines(r"worker r1 detached: the worker said: worker stopping \(SIGTERM\)"), s.master.log())
        self.assertLess(took, 1.5)

    def test_connection_cut_mid_build_is_rerun_after_reconnect(self):
        s = self.sys
        self.start(master_config(self.port, builders={"slow": (["r1"], [gate_step(s)])}))
        proxy = Proxy(self.port)
        self.addCleanup(proxy.close)
        w = self.remote_worker("r1", port=proxy.port)
        bid = s.submit("slow")
        wait_gate_reached(s, bid)
        proxy.cut()
        self.assertEqual(s.wait_build(bid), (bid, "retry"))
        rerun = int(s.build_prop(bid, "RetriedAs"))
        # The worker reconnects by itself and gets the rerun.
        wait_for(lambda: proxy.accepted >= 2, 20, "the worker to reconnect")
        s.wait_attached("r1", timeout=20)
        wait_gate_reached(s, rerun, timeout=20)
        open_gate(s, rerun)
        self.assertEqual(s.wait_build(rerun), (rerun, "success"))
        self.assertTrue(w.alive())
        self.assertIn("connection to the master at", w.log())
        self.assertIn("killing 1 running build", w.log())

    # --- authentication --------------------------------------------------

    def test_wrong_password_and_unknown_name(self):
        s = self.sys
        self.start(master_config(self.port))
        w = self.remote_worker("r1", wait_attached=False, password="not-the-password")
        self.assertNotEqual(w.wait(timeout=20), 0, w.log())
        self.assertIn("authentication failed", w.log())
        self.assertEqual(len(self.master_lines(
            r"warning: invalid login from worker 'r1': wrong password \(127\.0\.0\.1:\d+\)$")), 1, s.master.log())

        ghost = self.remote_worker("ghost", wait_attached=False)
        self.assertNotEqual(ghost.wait(timeout=20), 0, ghost.log())
        self.assertIn("authentication failed", ghost.log())
        self.assertEqual(len(self.master_lines(
            r"warning: invalid login from unknown worker 'ghost' \(127\.0\.0\.1:\d+\)$")), 1, s.master.log())
        self.assertIs(s.worker_prop("r1", "Connected"), False)

        # The peer cannot tell the two apart.
        self.assertEqual(self.client("login", "r1", "wrong")[0], "org.buildyard.Error.AuthFailed")
        self.assertEqual(self.client("login", "ghost", "pw-ghost")[0], "org.buildyard.Error.AuthFailed")

    def test_local_worker_cannot_log_in_over_tcp(self):
        s = self.sys
        s.write_config(f"[master]\nname = it\nlisten = 127.0.0.1:{self.port}\n[worker loc]\ntype = local\n")
        s.start_master()
        self.assertEqual(self.client("login", "loc", "")[0], "org.buildyard.Error.AuthFailed")
        self.assertTrue(self.master_lines(r"invalid login from unknown worker 'loc' \(127\.0\.0\.1:\d+\)$"))

    def test_nothing_but_the_handshake_before_authenticating(self):
        self.start(master_config(self.port))
        self.assertEqual(self.client("call", "org.buildyard.WorkerLink1", "Detach")[0],
                         "org.buildyard.Error.AccessDenied")
        self.assertEqual(self.client("call", "org.buildyard.WorkerLink1", "StepStarted")[0],
                         "org.buildyard.Error.AccessDenied")
        self.assertEqual(self.client("call", "org.freedesktop.DBus.Introspectable", "Introspect")[0],
                         "org.buildyard.Error.AccessDenied")
        self.assertEqual(self.client("call", "org.freedesktop.DBus.Peer", "Ping")[0], "ok")
        # Authenticated, its calls are its worker's; Attach stays closed.
        out = self.client("login", "r1", "pw-r1")
        self.assertEqual(out[0], "ok")
        self.assertEqual(out[1], "StepStarted org.buildyard.Error.NoSuchBuild")
        self.assertEqual(out[2], "Attach org.buildyard.Error.AccessDenied")

    def test_unauthenticated_connection_is_closed_after_the_timeout(self):
        self.start(master_config(self.port, master_lines="auth_timeout = 1"))
        out = self.client("hello", "r1", timeout=20)
        self.assertEqual(out[0], "hello ok")
        took = float(out[1].split()[2])  # since the client began to connect
        self.assertGreaterEqual(took, 0.95)
        self.assertLess(took, 5)
        self.assertEqual(len(self.master_lines(
            r"connection tcp#\d+ from 127\.0\.0\.1:\d+ closed: not authenticated within 1 s")), 1)

    def test_repeated_failures_from_one_address_are_slowed_down(self):
        self.start(master_config(self.port, workers={"r1": "", "r2": ""}))
        times = []
        for _ in range(5):
            t = time.monotonic()
            self.assertEqual(self.client("login", "r1", "wrong")[0], "org.buildyard.Error.AuthFailed")
            times.append(time.monotonic() - t)
        # 0, 0.2, 0.4, 0.8, 1.6 s of delay
        self.assertGreater(times[4], 1.4, times)
        self.assertGreater(times[4], times[2] * 2, times)
        # While a failure waits, another worker logs in at once, and the
        # master answers on its bus.
        slow = subprocess.Popen([CLIENT, f"127.0.0.1:{self.port}", "login", "r1", "wrong"],
                                stdout=subprocess.PIPE, text=True)
        t = time.monotonic()
        self.assertEqual(self.client("login", "r2", "pw-r2")[0], "ok")
        self.assertLess(time.monotonic() - t, 1.0)
        self.sys.get(MASTER_PATH, "org.buildyard.Master1", "Version")
        self.assertIsNone(slow.poll(), "the failing login is still held back")
        self.assertEqual(slow.communicate(timeout=30)[0].split("\n")[0], "org.buildyard.Error.AuthFailed")
        self.assertGreater(time.monotonic() - t, 2.5)
        # The right password for r1 now waits its turn too, then gets in.
        t = time.monotonic()
        self.assertEqual(self.client("login", "r1", "pw-r1")[0], "ok")
        self.assertGreater(time.monotonic() - t, 1.0)

    def test_guesses_for_one_name_from_many_addresses_come_one_at_a_time(self):
        s = self.sys
        self.start(master_config(self.port, workers={"r1": "", "r2": ""}))
        # 40 guessers on 127.0.0.2 and up, for 4 s, each guessing again as
        # soon as it is answered.
        deadline = time.monotonic() + 4
        answers = []

        def guess(address):
            env = dict(os.environ, REMOTE_CLIENT_BIND=address)
            while time.monotonic() < deadline:
                r = subprocess.run([CLIENT, f"127.0.0.1:{self.port}", "login", "r1", "guess"], env=env,
                                   capture_output=True, text=True, timeout=60)
                answers.append((address, r.stdout.split("\n")[0]))
        threads = [threading.Thread(target=guess, args=(f"127.0.0.{i}",)) for i in range(2, 42)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        checked = self.master_lines(r"invalid login from worker 'r1': wrong password \(127\.0\.0\.(\d+):\d+\)$")
        addresses = {re.search(r"\(127\.0\.0\.(\d+):", line).group(1) for line in checked}
        self.assertGreater(len(addresses), 1, "the guesses came from many addresses")
        # Checked one at a time with a delay doubling from 0.2 s: 0, 0.2, 0.6,
        # 1.4, 3.0, 6.2, 12.6 s; the guesses still held when the guessing
        # stops wait their turn until the 10 s to authenticate run out.
        self.assertGreater(len(answers), 3 * len(checked), "far more guesses than checks")
        self.assertLessEqual(len(checked), 8, f"{len(answers)} answers, {len(checked)} checked")
        self.assertNotIn("ok", [a for _, a in answers])
        # Another worker is not held back meanwhile, and r1 itself is never
        # locked out for good: its real worker attaches once the guessing stops.
        self.assertEqual(self.client("login", "r2", "pw-r2")[0], "ok")
        w = self.remote_worker("r1", wait_attached=False)
        s.wait_attached("r1", timeout=30)
        self.assertTrue(w.alive())

    # --- liveness --------------------------------------------------------

    def test_frozen_worker_is_detached_by_keepalive_and_comes_back(self):
        s = self.sys
        self.start(master_config(self.port, workers={"r1": "keepalive_interval = 1\nkeepalive_timeout = 1\n"},
                                 builders={"slow": (["r1"], [gate_step(s)])}))
        w = self.remote_worker("r1")
        self.assertEqual(s.worker_prop("r1", "KeepaliveInterval"), 1)
        bid = s.submit("slow")
        wait_gate_reached(s, bid)
        w.signal(signal.SIGSTOP)
        t = time.monotonic()
        try:
            s.wait_attached("r1", False, timeout=10)
            detached_after = time.monotonic() - t
            self.assertLess(detached_after, 1 + 1 + 1.5)
            self.assertEqual(s.wait_build(bid), (bid, "retry"))
            self.assertTrue(self.master_lines(r"worker r1 detached: no answer to a keepalive within 1 s"))
        finally:
            w.signal(signal.SIGCONT)
        s.wait_attached("r1", timeout=20)
        rerun = int(s.build_prop(bid, "RetriedAs"))
        wait_gate_reached(s, rerun, timeout=20)
        open_gate(s, rerun)
        self.assertEqual(s.wait_build(rerun), (rerun, "success"))

    def test_keepalive_none_sends_no_ping(self):
        """keepalive_interval = none: nothing at all goes to an idle worker.
        The same setup with 1 s shows that the relay would see the pings."""
        s = self.sys
        self.start(master_config(self.port, workers={"quiet": "keepalive_interval = none\n",
                                                     "chatty": "keepalive_interval = 1\n"}))
        proxies = {}
        for name in ("quiet", "chatty"):
            proxies[name] = Proxy(self.port)
            self.addCleanup(proxies[name].close)
            self.remote_worker(name, port=proxies[name].port)
        self.assertEqual(s.worker_prop("quiet", "KeepaliveInterval"), 0)
        time.sleep(0.5)  # let the attach's own replies drain through the relays
        before = {name: p.to_worker for name, p in proxies.items()}
        time.sleep(3.5)  # three intervals of the chatty worker
        self.assertGreater(proxies["chatty"].to_worker, before["chatty"], "the relay sees pings")
        self.assertEqual(proxies["quiet"].to_worker, before["quiet"], "keepalive_interval = none pinged")
        self.assertIs(s.worker_prop("quiet", "Connected"), True)

    def reload_master(self, text):
        log = self.sys.master.log
        before = log().count("configuration reloaded")
        self.sys.write_config(text)
        self.sys.master.signal(signal.SIGHUP)
        wait_for(lambda: log().count("configuration reloaded") > before, 10, "the master's reload")

    def test_reload_of_keepalive_interval_reaches_both_ends(self):
        s = self.sys
        self.start(master_config(self.port, workers={"r1": "keepalive_interval = 1\nkeepalive_timeout = 1\n"}))
        w = self.remote_worker("r1")
        first = s.worker_prop("r1", "LastConnected")

        # 1 -> none: the worker must stop expecting pings, or it would drop
        # the link after 2 s of silence.
        self.reload_master(master_config(self.port, workers={"r1": "keepalive_interval = none\n"}))
        wait_for(lambda: "now sends a keepalive every never" in w.log(), 10, "the worker to learn the new interval")
        time.sleep(3.5)  # past twice the old interval
        self.assertNotIn("heard nothing from the master", w.log())
        self.assertEqual(s.worker_prop("r1", "LastConnected"), first, "the link was dropped and made again")

        # none -> 1 s: the master's timer follows at once (not at its next
        # look at the config): a frozen worker is detached within seconds.
        self.reload_master(master_config(self.port, workers={"r1": "keepalive_interval = 1\nkeepalive_timeout = 1\n"}))
        wait_for(lambda: "now sends a keepalive every 1 s" in w.log(), 10, "the worker to learn the new interval")
        w.signal(signal.SIGSTOP)
        t = time.monotonic()
        try:
            s.wait_attached("r1", False, timeout=15)
            self.assertLess(time.monotonic() - t, 1 + 1 + 3)
        finally:
            w.signal(signal.SIGCONT)
        s.wait_attached("r1", timeout=20)

        # 1 -> 5 s, more than twice the old value: the worker waits 10 s now.
        second = s.worker_prop("r1", "LastConnected")
        self.reload_master(master_config(self.port, workers={"r1": "keepalive_interval = 5\n"}))
        wait_for(lambda: "now sends a keepalive every 5 s" in w.log(), 10, "the worker to learn the new interval")
        time.sleep(3.5)
        self.assertEqual(s.worker_prop("r1", "LastConnected"), second, "the link was dropped and made again")
        self.assertIs(s.worker_prop("r1", "Connected"), True)

    def test_worker_reconnects_when_it_hears_nothing(self):
        # The master answers no keepalive of its own: freeze the master, and
        # the worker gives up on the connection after twice the interval.
        s = self.sys
        self.start(master_config(self.port, workers={"r1": "keepalive_interval = 1\nkeepalive_timeout = 30\n"}))
        w = self.remote_worker("r1")
        first = s.worker_prop("r1", "LastConnected")
        s.master.signal(signal.SIGSTOP)
        t = time.monotonic()
        try:
            wait_for(lambda: "heard nothing from the master" in w.log(), 10, "the worker to notice the silence")
            # Twice the interval, plus slack for a loaded machine; not the 30 s keepalive_timeout.
            self.assertLess(time.monotonic() - t, 2 * 1 + 3)
        finally:
            s.master.signal(signal.SIGCONT)
        # It really dropped the connection and made a new one: a new attach.
        wait_for(lambda: s.worker_prop("r1", "LastConnected") > first, 20, "the worker to attach again")
        s.wait_attached("r1", timeout=20)
        self.assertGreaterEqual(w.log().count("attached to the master at"), 2, w.log())

    def test_worker_sighup_says_which_keys_need_a_restart(self):
        s = self.sys
        self.start(master_config(self.port, builders={"ok": (["r1"], ["true"])}))
        w = self.remote_worker("r1")
        first = s.worker_prop("r1", "LastConnected")
        # A new password (the master does not know it) and reconnect_max: the
        # link keeps the old ones until a restart, and the worker says so.
        self.worker_file("r1", password="pw-new", extra="reconnect_max = 7\nkill_timeout = 3\n")
        w.signal(signal.SIGHUP)
        wait_for(lambda: "reloaded " in w.log(), 10, "the worker's reload")
        self.assertIn("password, reconnect_max changed in", w.log())
        self.assertIn("takes effect only when the worker restarts", w.log())
        self.assertIn("kill_timeout 3 s", w.log())
        # Still attached on the same connection, and it still builds.
        bid = s.submit("ok")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertEqual(s.worker_prop("r1", "LastConnected"), first)
        self.assertIs(s.worker_prop("r1", "Connected"), True)

    # --- duplicates ------------------------------------------------------

    def test_a_reload_moves_the_listener_and_keeps_open_connections(self):
        def accepts(port):
            with socket.socket() as c:
                c.settimeout(2)
                return c.connect_ex(("127.0.0.1", port)) == 0

        s = self.sys
        self.start(master_config(self.port))
        self.remote_worker("r1")
        new_port = free_port()
        s.write_config(master_config(self.port, listen=f"127.0.0.1:{new_port}"))
        s.call(MASTER_PATH, "org.buildyard.Master1", "Reload")
        self.assertTrue(accepts(new_port))
        self.assertFalse(accepts(self.port))
        self.assertTrue(s.worker_prop("r1", "Connected"))  # its connection stayed
        self.assertTrue(self.master_lines(f"listening for remote workers on 127.0.0.1:{new_port} "
                                          f"instead of 127.0.0.1:{self.port}"))
        # An address already taken: the error is logged, the listener stays.
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            s.write_config(master_config(self.port, listen=f"127.0.0.1:{busy}"))
            s.call(MASTER_PATH, "org.buildyard.Master1", "Reload")
            self.assertTrue(self.master_lines(f"cannot listen on 127.0.0.1:{busy}: .*; still listening on "
                                              f"127.0.0.1:{new_port}"))
        self.assertTrue(accepts(new_port))
        # Empty: no listener at all.
        s.write_config(master_config(self.port, listen=""))
        s.call(MASTER_PATH, "org.buildyard.Master1", "Reload")
        self.assertFalse(accepts(new_port))
        self.assertTrue(s.worker_prop("r1", "Connected"))

    def test_second_connection_is_refused_while_the_first_answers(self):
        s = self.sys
        self.start(master_config(self.port))
        first = self.remote_worker("r1")
        second = s.start_worker("r1", wait_attached=False)
        wait_for(lambda: "already attached" in second.log(), 20, "the second worker to be refused")
        self.assertTrue(self.master_lines(r"refused a second connection for worker 'r1' from 127\.0\.0\.1:\d+: "
                                          r"its attached link tcp#\d+ answers"))
        self.assertTrue(first.alive())
        self.assertIs(s.worker_prop("r1", "Connected"), True)
        self.assertIn("attached to the master", first.log())
        self.assertNotIn("attached to the master", second.log())
        second.stop()

    def test_second_connection_wins_when_the_first_is_silent(self):
        s = self.sys
        self.start(master_config(self.port, workers={"r1": "keepalive_interval = none\n"},
                                 builders={"slow": (["r1"], [gate_step(s)])}, master_lines="duplicate_ping_timeout = 1"))
        first = self.remote_worker("r1")
        bid = s.submit("slow")
        wait_gate_reached(s, bid)
        first.signal(signal.SIGSTOP)
        try:
            second = s.start_worker("r1", wait_attached=False)
            wait_for(lambda: "attached to the master" in second.log(), 20, "the second worker to attach")
            self.assertEqual(s.wait_build(bid), (bid, "retry"))
            log = s.master.log()
            detached = log.index("worker r1 detached: it did not answer a ping within 1 s")
            attached = [m.start() for m in re.finditer(r"worker r1 attached", log)]
            self.assertEqual(len(attached), 2)
            self.assertLess(attached[0], detached)
            self.assertLess(detached, attached[1], "the old link is gone before the new one attaches")
            self.assertIs(s.worker_prop("r1", "Connected"), True)
            rerun = int(s.build_prop(bid, "RetriedAs"))
            wait_gate_reached(s, rerun)
            open_gate(s, rerun)
            self.assertEqual(s.wait_build(rerun), (rerun, "success"))
        finally:
            first.signal(signal.SIGCONT)
        # The first, continued, finds its connection closed; it tries again
        # and is refused while the second answers.
        wait_for(lambda: "already attached" in first.log() or "closed" in first.log(), 20,
                 "the first worker to notice")

    # --- bad input -------------------------------------------------------

    def test_bad_connections_cost_nothing_lasting(self):
        s = self.sys
        self.start(master_config(self.port, workers={"g1": "max_builds = 2\n", "g2": "max_builds = 2\n"},
                                 builders={"b": (["g1", "g2"], ["echo built $BUILDYARD_BUILD_ID"])},
                                 master_lines="auth_timeout = 2"))
        self.remote_worker("g1")
        self.remote_worker("g2")
        pid = s.master.pid
        baseline = fd_count(pid)
        lines_before = len(self.master_lines(r"connection tcp#\d+ from"))

        stop = threading.Event()
        builds = []

        def keep_building():
            while not stop.is_set():
                builds.append(s.submit("b"))
                time.sleep(0.05)
        builder = threading.Thread(target=keep_building)
        builder.start()

        def auth_then(payload):
            c = tls_connect(self.port)
            c.sendall(b"\0AUTH ANONYMOUS 74657374\r\n")
            reply = c.recv(1024)
            assert reply.startswith(b"OK "), reply
            c.sendall(b"BEGIN\r\n" + payload)
            return c

        def tls12_only():
            raw = socket.create_connection(("127.0.0.1", self.port))
            try:
                tls_client_context(maximum=ssl.TLSVersion.TLSv1_2).wrap_socket(raw)
                raise AssertionError("the master accepted TLS 1.2")
            except ssl.SSLError:
                pass
            return raw

        def reset_mid_handshake():
            c = socket.create_connection(("127.0.0.1", self.port))
            c.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(40))  # a ClientHello's start
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # RST
            return None

        # A method call header declaring a body of almost 4 GiB.
        huge = struct.pack("<cBBBII", b"l", 1, 0, 1, 0xFFFFFFF0, 1) + struct.pack("<I", 0)
        socks = []
        try:
            for i in range(400):
                kind = i % 8
                if kind == 0:
                    c = tls_connect(self.port)
                    c.sendall(os.urandom(512))  # not D-Bus, inside TLS
                elif kind == 1:
                    c = auth_then(huge)
                elif kind == 2:
                    c = auth_then(b"")  # authenticated at the D-Bus level, then silence
                elif kind == 3:
                    c = tls_connect(self.port)  # TLS, then silence
                # Bad TLS handshakes:
                elif kind == 4:
                    c = socket.create_connection(("127.0.0.1", self.port))
                    c.sendall(os.urandom(512))  # a ClientHello of garbage
                elif kind == 5:
                    c = socket.create_connection(("127.0.0.1", self.port))  # stalls before its ClientHello
                elif kind == 6:
                    c = tls12_only()
                else:
                    c = reset_mid_handshake()
                if c is not None:
                    socks.append(c)
                if i % 20 == 0:
                    s.get(MASTER_PATH, "org.buildyard.Master1", "Version")  # responsive throughout
            wait_for(lambda: len(self.master_lines(r"connection tcp#\d+ from")) - lines_before >= 400, 30,
                     "every bad connection to be closed")
        finally:
            stop.set()
            builder.join()
            for c in socks:
                c.close()
        for bid in builds:
            self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertGreater(len(builds), 10)
        wait_for(lambda: fd_count(pid) <= baseline, 10, f"the master's fds to return to {baseline}")
        lines = self.master_lines(r"connection tcp#\d+ from")
        self.assertEqual(len(lines) - lines_before, 400, "one line per bad connection")
        new = lines[lines_before:]
        # Garbage, TLS 1.2 and resets fail the TLS handshake (a reset that
        # lands before the master reads may look like silence); garbage
        # inside TLS breaks the D-Bus protocol and the 4 GiB header passes
        # the 64 KiB allowed before authentication, both at once; the others
        # run out of time.
        tls_failed = len([x for x in new if "TLS handshake failed" in x])
        silent = len([x for x in new if "not authenticated within 2 s" in x])
        garbage = len([x for x in new if "the peer broke the D-Bus protocol" in x])
        declared = len([x for x in new if "before authenticating (a D-Bus message of 4294967296 bytes at byte" in x])
        self.assertGreaterEqual(tls_failed, 140, new)
        self.assertGreaterEqual(silent, 150, new)
        # 50 sent garbage and 50 the huge header inside TLS; on a loaded
        # machine a few may reach their 2 s deadline before the master reads
        # the bytes, and count as silent instead.
        self.assertGreaterEqual(garbage + declared, 75, new)
        self.assertLessEqual(garbage, 50, new)
        self.assertLessEqual(declared, 50, new)
        self.assertEqual(tls_failed + silent + garbage + declared, 400, new)
        ids = [re.search(r"tcp#(\d+)", line).group(1) for line in lines]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertIs(s.worker_prop("g1", "Connected"), True)
        self.assertIs(s.worker_prop("g2", "Connected"), True)

    # --- listening -------------------------------------------------------

    def test_socket_activation(self):
        s = self.sys
        s.write_config(master_config(self.port, listen="", builders={"b": (["r1"], ["echo activated"])}))
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", self.port))
        lsock.listen(16)
        self.addCleanup(lsock.close)
        fd = lsock.fileno()
        env = dict(s.env)
        env["LISTEN_FDS"] = "1"
        notify = os.path.join(s.dir, "master.notify")
        wrapper = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh",
                   os.path.join(BIN, "buildyard-masterd"), "--config", s.config_path, "--state-directory",
                   s.state_dir]

        def to_fd3():
            os.dup2(fd, 3)
            os.set_inheritable(3, True)
        log = open(os.path.join(s.dir, "master-activated.log"), "wb")
        self.addCleanup(log.close)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify)
        self.addCleanup(sock.close)
        env["NOTIFY_SOCKET"] = notify
        # Keep both: subprocess closes unlisted fds after preexec_fn runs,
        # which would close the dup on fd 3 unless fd happens to be 3.
        p = subprocess.Popen(wrapper, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=to_fd3,
                             pass_fds=tuple({fd, 3}))
        self.addCleanup(lambda: (p.terminate(), p.wait()))
        sock.settimeout(10)
        while b"READY=1" not in sock.recv(4096):
            pass
        with open(os.path.join(s.dir, "master-activated.log")) as f:
            self.assertIn("on the socket systemd passed", f.read())
        self.remote_worker("r1")
        bid = s.submit("b")
        self.assertEqual(s.wait_build(bid), (bid, "success"))

    def test_both_ends_of_a_connection_use_tcp_keepalive(self):
        s = self.sys
        s.write_config(master_config(self.port))
        s.start_master()
        self.remote_worker("r1")
        # ss shows a keepalive timer only on sockets with SO_KEEPALIVE set
        # (and while no data waits for an ack: then it shows the
        # retransmission timer instead, so wait for the idle state).
        def both_keepalive():
            out = subprocess.run(["ss", "-tnoH", "state", "established",
                                  f"( sport = :{self.port} or dport = :{self.port} )"],
                                 capture_output=True, text=True, check=True).stdout
            lines = [line for line in out.splitlines() if line.strip()]
            # the master's end and the worker's end
            return len(lines) == 2 and all("timer:(keepalive" in line for line in lines)
        wait_for(both_keepalive, 10, "keepalive timers on both ends of the connection")

    def test_ipv6_literal_listen_and_connect(self):
        s = self.sys
        port = free_port("::1")
        s.write_config(master_config(port, listen=f"[::1]:{port}", builders={"b": (["r1"], ["echo over v6"])}))
        s.start_master()
        path = os.path.join(s.dir, "etc", "workers", "r1.ini")
        with open(path, "w") as f:
            f.write(f"master = [::1]:{port}\npassword = pw-r1\nreconnect_max = 2\n{self.pin()}")
        s.start_worker("r1")
        self.assertIn("[::1]", s.master.log() + s.workers["r1"].log())
        bid = s.submit("b")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertIn("over v6", s.read_log(bid))


if __name__ == "__main__":
    unittest.main()
