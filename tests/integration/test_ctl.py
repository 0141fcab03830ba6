"""buildyardctl against the real master and workers on a private bus: every
command's output and exit code, checked against what busctl reads."""

import json
import os
import re
import signal
import socket
import subprocess
import time
import unittest

from harness import (BIN, MASTER_PATH, NOBODY_UID, PG_URI, SystemTest, all_properties, gate_dir, master_ini,
                     open_gate, read_log_slice, wait_for, wait_gate_reached)

MASTER1 = "org.buildyard.Master1"
WORKER1 = "org.buildyard.Worker1"
BUILD1 = "org.buildyard.Build1"
CTL = os.path.join(BIN, "buildyardctl")


def gate(system):
    """A step that marks its build started and waits for its gate (the files of
    harness gate_step, so wait_gate_reached and open_gate work). It also ends
    when the test's directory is gone, so a step orphaned by a killed worker
    does not outlive the test. A script, as the loop is longer than an INI line may be."""
    d = gate_dir(system)
    script = os.path.join(d, "gate.sh")
    with open(script, "w") as f:
        f.write(f'touch "{d}/started-$BUILDYARD_BUILD_ID"\n'
                f'while [ ! -e "{d}/go-$BUILDYARD_BUILD_ID" ] && [ -d "{d}" ]; do sleep 0.02; done\n')
    return f"sh {script}"


def snake_case(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def local_time(usec):
    return "-" if usec == 0 else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(usec // 1000000))


def table(text, header):
    """Splits an aligned table into rows of cells, at the offsets where the
    header's column names start; asserts every cell fits its column."""
    lines = text.split("\n")
    assert lines[-1] == "", f"table does not end in a newline: {text!r}"
    lines = lines[:-1]
    offsets, pos = [], 0
    for name in header:
        pos = lines[0].index(name, pos)
        offsets.append(pos)
        pos += len(name)
    rows = []
    for line in lines:
        assert line == line.rstrip(), f"trailing blanks in {line!r}"
        cells = []
        for i, start in enumerate(offsets):
            end = offsets[i + 1] if i + 1 < len(offsets) else len(line)
            cell = line[start:end]
            if i + 1 < len(offsets):
                # Two blanks at least before the next column, and no text spilling into it.
                assert cell.endswith("  ") and line[end] != " ", f"column {header[i]} misaligned in:\n{text}"
            if i > 0:
                assert line[start - 1] == " " and line[start] != " ", f"column {header[i]} misaligned in:\n{text}"
            cells.append(cell.rstrip())
        rows.append(cells)
    assert rows[0] == list(header), f"header {rows[0]} in:\n{text}"
    return rows[1:]


class CtlTest(SystemTest):

    def setUp(self):
        super().setUp()
        self.background = []
        # Runs before System.close: open every gate, then end any buildyardctl left running.
        self.addCleanup(self.release)

    def release(self):
        d = gate_dir(self.sys)
        for f in os.listdir(d):
            if f.startswith("started-"):
                open(os.path.join(d, "go-" + f[len("started-"):]), "w").close()
        for p in self.background:
            if p.poll() is None:
                p.kill()
            p.communicate()

    def start(self, workers, builders, start_workers=()):
        self.sys.write_config(master_ini(workers, builders, name="it"))
        self.sys.start_master()
        for w in start_workers:
            self.sys.start_worker(w)

    def ctl(self, *args, user=None):
        return self.sys.ctl(*args, check=False, user=user)

    def ctl_bytes(self, *args):
        r = subprocess.run([CTL, *args], env=self.sys.env, capture_output=True, timeout=60)
        return r

    def ctl_background(self, *args, stdout=subprocess.PIPE):
        p = subprocess.Popen([CTL, *args], env=self.sys.env, stdout=stdout, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
        self.background.append(p)
        return p

    def list_builds(self, limit=0):
        return self.sys.call(MASTER_PATH, MASTER1, "ListBuilds", "t", limit)[0]

    def full_log(self, build_id):
        data = b""
        while True:
            chunk = read_log_slice(self.sys, build_id, len(data), 65536)
            if not chunk:
                return data
            data += chunk

    def assert_exit(self, r, code, stderr_part=None):
        self.assertEqual(r.returncode, code, f"stdout: {r.stdout}\nstderr: {r.stderr}")
        if stderr_part is not None:
            self.assertIn(stderr_part, r.stderr)

    # --- status -----------------------------------------------------------

    def test_status_text_and_json_match_master1(self):
        s = self.sys
        self.start({"w1": "max_builds = 1", "w2": ""}, {"b": (["w1"], [gate(s)])}, start_workers=["w1"])
        a = s.submit("b")
        b = s.submit("b")
        wait_gate_reached(s, a)
        self.assertEqual(s.build_prop(b, "State"), "pending")

        props = all_properties(s, MASTER_PATH, MASTER1)
        workers = s.call(MASTER_PATH, MASTER1, "ListWorkers")[0]
        self.assertEqual((props["Name"], props["ConnectedWorkers"], props["RunningBuilds"], props["PendingBuilds"],
                          len(workers)), ("it", 1, 1, 1, 2))
        self.assertTrue(props["Version"])
        self.assertRegex(props["TlsFingerprint"], r"^sha256:[0-9a-f]{64}$")
        expected = (f"version: {props['Version']}\nname: it\ntls fingerprint: {props['TlsFingerprint']}\n"
                    f"workers: 2\nconnected workers: 1\n"
                    f"running builds: 1\npending builds: 1\n")
        r = self.ctl("status")
        self.assert_exit(r, 0)
        # Then the cluster's members: this master alone (its System's own
        # schema on PostgreSQL). On PostgreSQL it joined with fence 1 and
        # the database's clock ages its heartbeat (buildyard-masterd(8),
        # CLUSTER); with SQLite its fence is 0 and its heartbeat now.
        fence, age = (1, r"[0-9]\.[0-9]") if PG_URI else (0, r"0\.0")
        self.assertEqual(r.stdout[:len(expected)], expected)
        self.assertRegex(r.stdout[len(expected):],
                         r"^cluster members: 1\nMASTER +STATE +HEARTBEAT +FENCE +HOST +PID +ADDRESS +NOTE\n"
                         r"it +live +%s s ago +%d +\S+ +%d +\S+ +this master\n$" % (age, fence, s.master.pid))

        for args in (["--json", "status"], ["status", "--json"]):
            r = self.ctl(*args)
            self.assert_exit(r, 0)
            doc = json.loads(r.stdout)
            cluster = doc.pop("cluster")
            self.assertEqual(doc, {"version": props["Version"], "name": "it", "workers": 2,
                                   "tls_fingerprint": props["TlsFingerprint"],
                                   "connected_workers": 1, "running_builds": 1,
                                   "pending_builds": 1}, args)
            self.assertEqual([(c["name"], c["state"], c["fence"], c["this_master"], c["pid"]) for c in cluster],
                             [("it", "live", fence, True, s.master.pid)], args)

    # --- workers ----------------------------------------------------------

    def test_workers_table_and_json(self):
        s = self.sys
        self.start({"alpha": "max_builds = 2", "beta": "",
                    "gamma-with-a-long-name": "type = standard\npassword = secret\nproperty.os = linux"},
                   {"b": (["alpha"], [gate(s)])}, start_workers=["alpha", "beta"])
        a = s.submit("b")
        wait_gate_reached(s, a)
        r = self.ctl("pause", "beta", "--reason", "disk replacement")
        self.assert_exit(r, 0)
        self.assertEqual(r.stdout, "")
        self.assertIs(s.worker_prop("beta", "Paused"), True)

        r = self.ctl("workers")
        self.assert_exit(r, 0)
        header = ["NAME", "TYPE", "STATE", "BUILDS", "CONNECTED", "HOST", "NOTE"]
        rows = {row[0]: row for row in table(r.stdout, header)}
        self.assertEqual(set(rows), {"alpha", "beta", "gamma-with-a-long-name"})

        host = socket.gethostname()
        alpha = all_properties(s, s.worker_path("alpha"), WORKER1)
        beta = all_properties(s, s.worker_path("beta"), WORKER1)
        self.assertEqual(rows["alpha"], ["alpha", "local", "building", "1/2", local_time(alpha["LastConnected"]),
                                         host, "-"])
        self.assertEqual(rows["beta"], ["beta", "local", "paused", "0/-", local_time(beta["LastConnected"]), host,
                                        "paused: disk replacement"])
        gamma = all_properties(s, s.worker_path("gamma-with-a-long-name"), WORKER1)
        self.assertEqual(rows["gamma-with-a-long-name"],
                         ["gamma-with-a-long-name", "standard", "offline", "0/-", "-", "-",
                          f"missing since {local_time(gamma['MissingSince'])}"])
        self.assertNotEqual(alpha["LastConnected"], 0)

        for args in (["--json", "workers"], ["workers", "--json"]):
            r = self.ctl(*args)
            self.assert_exit(r, 0)
            doc = json.loads(r.stdout)
            self.assertEqual(sorted(w["name"] for w in doc), ["alpha", "beta", "gamma-with-a-long-name"])
            for w in doc:
                path = s.worker_path(w["name"])
                props = all_properties(s, path, WORKER1)
                expected = {snake_case(k): v for k, v in props.items()}
                expected["path"] = path
                self.assertEqual(w, expected, w["name"])
        self.assertEqual(next(w for w in doc if w["name"] == "beta")["pause_reason"], "disk replacement")

    # --- builds -----------------------------------------------------------

    def test_builds_newest_first_with_limit_and_json(self):
        s = self.sys
        self.start({"w1": "", "w9": ""}, {"ok": (["w1"], ["true"]), "bad": (["w1"], ["false"]),
                                           "stuck": (["w9"], ["true"])}, start_workers=["w1"])
        ids = []
        for builder in ("ok", "bad", "ok"):
            ids.append(s.submit(builder))
            s.wait_build(ids[-1])
        ids.append(s.submit("stuck"))  # w9 never attaches: pending, no worker, no result

        header = ["ID", "BUILDER", "WORKER", "STATE", "RESULT", "EXIT", "DURATION"]

        def expected(limit):
            return [[str(b[0]), b[1], b[2] or "-", b[3], b[4] or "-"] for b in self.list_builds(limit)]

        r = self.ctl("builds")
        self.assert_exit(r, 0)
        rows = table(r.stdout, header)
        self.assertEqual([row[:6] for row in rows], [[str(ids[3]), "stuck", "-", "pending", "-", "-"],
                                                     [str(ids[2]), "ok", "w1", "finished", "success", "0"],
                                                     [str(ids[1]), "bad", "w1", "finished", "failure", "1"],
                                                     [str(ids[0]), "ok", "w1", "finished", "success", "0"]])
        self.assertEqual([row[:5] for row in rows], expected(0))
        self.assertEqual(rows[0][6], "-", "a pending build has no duration")
        self.assertRegex(s.read_log(ids[1]), r"\A--- step 1/1: false\n--- failure: exit status 1, after \d\.\d\d s\n\Z")
        self.assertEqual(s.read_log(ids[0]), "--- step 1/1: true\n", "a success ends with its output")
        for row in rows[1:]:
            self.assertRegex(row[6], r"^\d\.\d\d s$", row)

        for args in (["builds", "--limit", "2"], ["builds", "-n", "2"]):
            r = self.ctl(*args)
            self.assert_exit(r, 0)
            self.assertEqual([row[0] for row in table(r.stdout, header)],
                             [str(ids[3]), str(ids[2])], args)
        r = self.ctl("builds", "--limit", "0")
        self.assertEqual(len(table(r.stdout, header)), 4)

        r = self.ctl("--json", "builds", "--limit", "3")
        self.assert_exit(r, 0)
        doc = json.loads(r.stdout)
        self.assertEqual([b["id"] for b in doc], [ids[3], ids[2], ids[1]])
        def timing(path):
            started, finished = (s.get(path, "org.buildyard.Build1", p) for p in ("StartedAt", "FinishedAt"))
            return (finished - started) / 1e6 if started else None
        self.assertEqual(doc, [{"id": b[0], "builder": b[1], "worker": b[2], "state": b[3], "result": b[4],
                                "exit_status": {"success": 0, "failure": 1}.get(b[4]), "duration": timing(b[5]),
                                "path": b[5]} for b in self.list_builds(3)])
        self.assertEqual(doc[2]["result"], "failure")
        self.assertEqual(doc[2]["path"], s.build_path(ids[1]))

        self.assert_exit(self.ctl("builds", "--limit", "many"), 2, "invalid limit")

    # --- submit --wait ----------------------------------------------------

    def submit_wait(self, *args):
        """submit ... --wait; returns (exit code, build id printed first, final line, stderr)."""
        r = self.ctl("submit", *args, "--wait")
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 2, f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r.returncode, int(lines[0]), lines[1], r.stderr

    def test_submit_wait_success_and_failure_with_properties(self):
        s = self.sys
        self.start({"w1": ""}, {"ok": (["w1"], ["echo color=$BUILDYARD_PROP_color eq=$BUILDYARD_PROP_eq"]),
                                "bad": (["w1"], ["echo before", "exit 3", "echo never"])}, start_workers=["w1"])
        rc, bid, last, err = self.submit_wait("ok", "-p", "color=blue", "-p", "eq=a=b")
        self.assertEqual((rc, last), (0, f"build {bid}: success"), err)
        self.assertEqual(s.build_prop(bid, "Result"), "success")
        self.assertEqual(s.build_prop(bid, "Properties").get("color"), "blue")
        self.assertIn("color=blue eq=a=b\n", s.read_log(bid))

        rc, bid2, last, err = self.submit_wait("bad")
        self.assertEqual((rc, last), (1, f"build {bid2}: failure"), err)
        self.assertEqual(s.build_prop(bid2, "Result"), "failure")
        self.assertGreater(bid2, bid)

        # --json: one document, no bare id line.
        r = self.ctl("--json", "submit", "ok", "--wait")
        self.assert_exit(r, 0)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["result"], "success")
        self.assertEqual(doc["final_id"], doc["id"])
        self.assertEqual(doc["path"], s.build_path(doc["id"]))

        # Without --wait: the id only, and the build exists.
        r = self.ctl("submit", "ok")
        self.assert_exit(r, 0)
        self.assertEqual(s.wait_build(int(r.stdout)), (int(r.stdout), "success"))

    def test_submit_property_without_value_is_a_usage_error_and_submits_nothing(self):
        s = self.sys
        self.start({"w1": ""}, {"ok": (["w1"], ["true"])}, start_workers=["w1"])
        s.wait_build(s.submit("ok"))
        before = self.list_builds()
        for bad in ("novalue", "=value"):
            r = self.ctl("submit", "ok", "-p", bad, "--wait")
            self.assert_exit(r, 2, f"invalid property '{bad}'")
            self.assertEqual(r.stdout, "")
        self.assert_exit(self.ctl("submit"), 2, "missing BUILDER")
        self.assert_exit(self.ctl("submit", "ok", "--no-such-option"), 2)
        self.assertEqual(self.list_builds(), before)
        self.assertEqual(s.get(MASTER_PATH, MASTER1, "PendingBuilds"), 0)

    def test_submit_wait_cancelled_from_another_buildyardctl(self):
        s = self.sys
        self.start({"w1": ""}, {"g": (["w1"], [gate(s)])}, start_workers=["w1"])
        p = self.ctl_background("submit", "g", "--wait")
        bid = int(p.stdout.readline())
        wait_gate_reached(s, bid)
        self.assertIsNone(p.poll())
        r = self.ctl("cancel", str(bid))
        self.assert_exit(r, 0)
        out, err = p.communicate(timeout=20)
        self.assertEqual((p.returncode, out), (4, f"build {bid}: cancelled\n"), err)
        self.assertEqual(s.build_prop(bid, "Result"), "cancelled")
        # The log ends by saying how the build ended.
        self.assertRegex(s.read_log(bid), r"\n--- cancelled: (exit status \d+, )?after \d+\.\d+ s\n\Z")

    def test_submit_wait_exception_when_the_build_directory_cannot_be_made(self):
        s = self.sys
        basedir = os.path.join(s.dir, "exc-base")
        os.makedirs(basedir)
        # The worker makes BASEDIR/BUILDER before the first step; a file there stops it.
        open(os.path.join(basedir, "exc"), "w").close()
        self.start({"w1": ""}, {"exc": (["w1"], ["echo never ran"])})
        s.start_worker("w1", basedir=basedir)
        rc, bid, last, err = self.submit_wait("exc")
        self.assertEqual((rc, last), (3, f"build {bid}: exception"), err)
        log = s.read_log(bid)
        self.assertIn("cannot create build directory", log)
        self.assertNotIn("never ran", log)

    def test_submit_wait_follows_a_retry_to_its_rerun(self):
        s = self.sys
        # lost_build_grace = 0: rerun at once, without waiting for w1 to
        # come back (test_orphans covers the wait).
        self.start({"w1": "lost_build_grace = 0"}, {"g": (["w1"], [gate(s)])}, start_workers=["w1"])
        p = self.ctl_background("submit", "g", "--wait")
        first = int(p.stdout.readline())
        wait_gate_reached(s, first)
        s.workers["w1"].signal(signal.SIGKILL)
        self.assertEqual(s.wait_build(first), (first, "retry"))
        rerun = int(s.build_prop(first, "RetriedAs"))
        self.assertNotEqual(rerun, 0)
        open_gate(s, first)  # the killed worker's orphaned step may go now
        self.assertIsNone(p.poll(), "submit --wait must keep waiting for the rerun")

        s.start_worker("w1")
        wait_gate_reached(s, rerun)
        self.assertIsNone(p.poll())
        open_gate(s, rerun)
        out, err = p.communicate(timeout=20)
        self.assertEqual((p.returncode, out), (0, f"build {rerun}: success\n"), err)
        self.assertIn(f"build {first} ended \"retry\"", err)
        self.assertEqual(s.build_prop(rerun, "Result"), "success")

    # --- log --------------------------------------------------------------

    def test_log_prints_exactly_what_readlog_returns(self):
        s = self.sys
        self.start({"w1": ""}, {"big": (["w1"], ["seq 1 20000", "printf '\\377\\376 raw bytes\\n'", "echo end"])},
                   start_workers=["w1"])
        bid = s.submit("big")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        expected = self.full_log(bid)
        self.assertGreater(len(expected), 65536, "the log must need more than one ReadLog chunk")
        self.assertIn(b"\xff\xfe raw bytes\n", expected)
        self.assertIn(b"\n20000\n", expected)
        for args in (["log", str(bid)], ["log", str(bid), "--follow"]):
            r = self.ctl_bytes(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, expected, args)
        for args in (["--json", "log", str(bid)], ["log", str(bid), "--json", "--follow"]):
            r = self.ctl(*args)
            self.assert_exit(r, 0)
            doc = json.loads(r.stdout)
            self.assertEqual({k: doc[k] for k in ("id", "state", "result")},
                             {"id": bid, "state": "finished", "result": "success"}, args)
            self.assertEqual(doc["path"], s.build_path(bid))
            # Bytes that are not UTF-8 become U+FFFD; everything else as it is.
            self.assertEqual(doc["log"], expected.decode("utf-8", errors="replace"), args)

    def test_log_follow_streams_a_running_build_to_its_end(self):
        s = self.sys
        self.start({"w1": ""}, {"f": (["w1"], ["echo before-gate", gate(s), "echo after-gate $BUILDYARD_BUILD_ID"])},
                   start_workers=["w1"])
        bid = s.submit("f")
        wait_gate_reached(s, bid)
        out_path = os.path.join(s.dir, "follow.out")
        with open(out_path, "wb") as out:
            p = self.ctl_background("log", str(bid), "--follow", stdout=out)

        def output():
            with open(out_path, "rb") as f:
                return f.read()
        wait_for(lambda: b"before-gate" in output(), 10, "the log so far from log --follow")
        self.assertIsNone(p.poll(), "log --follow must wait while the build runs")
        self.assertNotIn(b"after-gate", output())
        open_gate(s, bid)
        _, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(s.build_prop(bid, "State"), "finished")
        self.assertIn(f"after-gate {bid}\n".encode(), output())
        self.assertEqual(output(), self.full_log(bid))

    # --- errors -----------------------------------------------------------

    def test_finished_and_unknown_objects_are_errors(self):
        s = self.sys
        self.start({"w1": ""}, {"ok": (["w1"], ["true"])}, start_workers=["w1"])
        bid = s.submit("ok")
        s.wait_build(bid)
        r = self.ctl("cancel", str(bid))
        self.assert_exit(r, 2, "already finished")
        self.assertEqual(r.stderr, f"buildyardctl: build {bid} has already finished\n", "said once")
        self.assertEqual(s.build_prop(bid, "Result"), "success")
        self.assert_exit(self.ctl("cancel", "9999"), 2, "no such build")
        self.assert_exit(self.ctl("log", "9999"), 2, "no such build")
        for cmd in ("pause", "unpause", "shutdown"):
            self.assert_exit(self.ctl(cmd, "nosuch"), 2, "no such worker")
        before = self.list_builds()
        r = self.ctl("submit", "nosuch")
        self.assert_exit(r, 2, "no such builder")
        self.assertIn("no builder named 'nosuch'; the builders are: ok\n", r.stderr)
        self.assert_exit(self.ctl("submit", "nosuch", "--wait"), 2, "no such builder")
        self.assertEqual(self.list_builds(), before)
        self.assert_exit(self.ctl("cancel", "abc"), 2, "invalid build id")
        self.assert_exit(self.ctl("frobnicate"), 2, "unknown command")

    def test_no_master_running(self):
        for args in (["status"], ["workers"], ["submit", "b", "--wait"], ["pause", "w1"]):
            r = self.ctl(*args)
            self.assert_exit(r, 2, "buildyard-masterd is not running")

    def test_no_bus_says_what_to_do(self):
        gone = f"unix:path={self.sys.dir}/no-such-bus"
        r = subprocess.run([os.path.join(BIN, "buildyardctl"), "status"], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": gone})
        self.assert_exit(r, 2, f"cannot connect to the system bus at DBUS_SYSTEM_BUS_ADDRESS={gone}")
        self.assertIn("unset DBUS_SYSTEM_BUS_ADDRESS", r.stderr)

    # --- pause, unpause, shutdown -----------------------------------------

    def test_pause_and_unpause_change_worker1_paused(self):
        s = self.sys
        self.start({"w1": ""}, {"ok": (["w1"], ["true"])}, start_workers=["w1"])
        self.assert_exit(self.ctl("pause", "w1", "-r", "maintenance"), 0)
        self.assertEqual((s.worker_prop("w1", "Paused"), s.worker_prop("w1", "PauseReason"),
                          s.worker_prop("w1", "State")), (True, "maintenance", "paused"))
        bid = s.submit("ok")
        self.assertEqual(s.build_prop(bid, "State"), "pending")
        r = self.ctl("unpause", "w1")
        self.assert_exit(r, 0)
        self.assertIs(s.worker_prop("w1", "Paused"), False)
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        r = self.ctl("--json", "pause", "w1")
        self.assert_exit(r, 0)
        self.assertEqual(json.loads(r.stdout), {"ok": True})
        self.assertEqual((s.worker_prop("w1", "Paused"), s.worker_prop("w1", "PauseReason")), (True, ""))

    def test_shutdown_graceful_stops_the_worker_after_its_build(self):
        s = self.sys
        self.start({"w1": ""}, {"g": (["w1"], [gate(s)])}, start_workers=["w1"])
        w = s.workers["w1"]
        bid = s.submit("g")
        wait_gate_reached(s, bid)
        self.assert_exit(self.ctl("shutdown", "w1", "--graceful"), 0)
        self.assertTrue(w.alive(), "a graceful shutdown waits for the running build")
        self.assertIs(s.worker_prop("w1", "Connected"), True)
        self.assertEqual(s.build_prop(bid, "State"), "running")
        open_gate(s, bid)
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertEqual(w.wait(timeout=10), 0, w.log())
        s.wait_attached("w1", attached=False)

    def test_shutdown_now_ends_the_running_build_retry(self):
        s = self.sys
        self.start({"w1": ""}, {"g": (["w1"], [gate(s)])}, start_workers=["w1"])
        w = s.workers["w1"]
        bid = s.submit("g")
        wait_gate_reached(s, bid)
        self.assert_exit(self.ctl("shutdown", "w1"), 0)
        self.assertEqual(w.wait(timeout=10), 0, w.log())
        self.assertEqual(s.wait_build(bid), (bid, "retry"))
        self.assertNotEqual(s.build_prop(bid, "RetriedAs"), 0)
        self.assert_exit(self.ctl("shutdown", "w1"), 2, "not attached")

    # --- reload -----------------------------------------------------------

    def test_reload_success_and_broken_config(self):
        s = self.sys
        self.start({"w1": ""}, {"ok": (["w1"], ["true"])})
        s.write_config("[worker w2]\ntype = local\n", name="50-w2.ini")
        r = self.ctl("reload")
        self.assert_exit(r, 0)
        self.assertEqual(r.stdout, "reloaded: 2 workers, 1 builder\n")
        r = self.ctl("--json", "reload")
        self.assert_exit(r, 0)
        self.assertEqual(json.loads(r.stdout), {"ok": True, "workers": 2, "builders": 1})
        self.assertEqual(s.worker_path("w2"), "/org/buildyard/Master1/worker/w2")

        text = "[worker w3]\ntype = local\n\n[worker w1]\ntype = local\nmax_builds = lots\n"
        path = s.write_config(text, name="90-bad.ini")
        line = text.splitlines().index("max_builds = lots") + 1
        r = self.ctl("reload")
        self.assert_exit(r, 1)
        self.assertRegex(r.stderr, re.escape(f"{path}:{line}: [worker w1] max_builds:") + ".*lots")
        # One header, then the errors: not the master's and buildyardctl's both.
        self.assertEqual(r.stderr.count("stays in force"), 1, r.stderr)
        self.assertRegex(r.stderr, r"^buildyardctl: the new configuration was rejected; the old one stays in force:[ \n]")
        names = [w[0] for w in s.call(MASTER_PATH, MASTER1, "ListWorkers")[0]]
        self.assertEqual(sorted(names), ["w1", "w2"], "the old configuration stays in force")

    # --- permissions ------------------------------------------------------

    def test_non_root_may_read_but_not_change(self):
        s = self.sys
        self.start({"w1": ""}, {"ok": (["w1"], ["true"])}, start_workers=["w1"])
        bid = s.submit("ok")
        s.wait_build(bid)
        for args in (["status"], ["workers"], ["builds"], ["--json", "workers"]):
            as_root = self.ctl(*args)
            as_nobody = self.ctl(*args, user=NOBODY_UID)
            self.assert_exit(as_nobody, 0)
            # A cluster member's heartbeat age moves between the two calls.
            ages = re.compile(r"\b\d+(\.\d+)? s ago\b")
            self.assertEqual(ages.sub("_ s ago", as_nobody.stdout), ages.sub("_ s ago", as_root.stdout), args)
        self.assertIn("workers: 1\n", self.ctl("status", user=NOBODY_UID).stdout)

        before = self.list_builds()
        r = self.ctl("submit", "ok", "--wait", user=NOBODY_UID)
        self.assert_exit(r, 2, "permission denied")
        self.assertEqual(r.stdout, "")
        self.assertEqual(self.list_builds(), before)
        r = self.ctl("pause", "w1", "--reason", "nope", user=NOBODY_UID)
        self.assert_exit(r, 2, "permission denied")
        self.assertIs(s.worker_prop("w1", "Paused"), False)
        # buildyardctl(1): log, like every command that is not status/workers/builds, needs root or group buildyard.
        r = self.ctl("log", str(bid), user=NOBODY_UID)
        self.assertEqual((r.returncode, r.stderr), (2, "buildyardctl: permission denied: reading build logs needs "
                                                       "root or membership in group buildyard\n"))
        r = self.ctl("submit", "ok", user=NOBODY_UID)
        self.assertEqual(r.stderr, "buildyardctl: permission denied: submitting builds needs root or membership "
                                   "in group buildyard\n", "no pasted bus rejection")


if __name__ == "__main__":
    unittest.main()
