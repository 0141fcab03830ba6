"""The master's Prometheus metrics, scraped by a real Prometheus server
(Debian's, started here on loopback): builds and the queue as its HTTP API
reports them, `promtool check metrics`, the [master] metrics key, and that
every metric is documented in buildyard-masterd(8)."""

import json
import os
import re
import signal
import socket
import subprocess
import textwrap
import unittest
import urllib.parse
import urllib.request

from harness import (BIN, MASTER_PATH, SOURCE, SystemTest, free_port, gate_step, open_gate, wait_for,
                     wait_gate_reached)

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


def families(text):
    """{metric family name: type} from the # TYPE lines."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M)}


def value(text, series):
    """The value of one sample line, name and labels written exactly as scraped."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1:])
    return None


class Prometheus:
    """A Prometheus server scraping the master every second."""

    def __init__(self, system, target_port):
        self.port = free_port()
        self.target_port = target_port
        d = os.path.join(system.dir, "prometheus")
        os.makedirs(d)
        config = os.path.join(d, "prometheus.yml")
        with open(config, "w") as f:
            f.write(textwrap.dedent(f"""\
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                scrape_configs:
                  - job_name: buildyard
                    static_configs:
                      - targets: ["127.0.0.1:{target_port}"]
                """))
        self.proc = system._spawn("prometheus", [
            PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={d}/data",
            f"--web.listen-address=127.0.0.1:{self.port}"])

    def query(self, expr):
        """The instant vector for expr: [(labels, value)], or [] before the data is there."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.load(r)
        except OSError:
            return []  # not listening yet
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus answered {body} to {expr}")
        return [(s["metric"], float(s["value"][1])) for s in body["data"]["result"]]

    def wait_value(self, expr, expected, timeout=20):
        """Waits until expr has exactly one sample, equal to expected."""
        seen = []

        def matches():
            seen[:] = self.query(expr)
            return len(seen) == 1 and seen[0][1] == expected
        try:
            wait_for(matches, timeout, f"{expr} == {expected} in Prometheus")
        except AssertionError as e:
            raise AssertionError(f"{e}; last answer: {seen}; Prometheus log:\n{self.proc.log()[-2000:]}; "
                                 f"the master's metrics now:\n{scrape(self.target_port)[1]}") from None


class MetricsTest(SystemTest):

    def config(self, port, extra=""):
        return f"""
            [master]
            name = it
            listen =
            metrics = 127.0.0.1:{port}
            {extra}
            [worker w1]
            type = local
            max_builds = 1
            [builder hello]
            workers = w1
            step.1 = echo hello
            [builder broken]
            workers = w1
            step.1 = false
            [builder slow]
            workers = w1
            step.1 = {gate_step(self.sys)}
            """

    def test_prometheus_scrapes_builds_queue_and_workers(self):
        s = self.sys
        port = free_port()
        s.write_config(self.config(port))
        s.start_master()
        s.start_worker("w1")
        prom = Prometheus(s, port)

        # Three builds succeed and one fails.
        for _ in range(3):
            self.assertEqual(s.wait_build(s.submit("hello"))[1], "success")
        self.assertEqual(s.wait_build(s.submit("broken"))[1], "failure")
        # One build runs on the only slot and two wait: the queue depth.
        running = s.submit("slow")
        wait_gate_reached(s, running)
        waiting = [s.submit("slow"), s.submit("slow")]
        # A refused call is counted by its error.
        r = s.call(MASTER_PATH, "org.buildyard.Master1", "SubmitBuild", "sa{ss}", "nope", 0, check=False)
        self.assertIn("nope", r.stderr)

        prom.wait_value('buildyard_builds_finished_total{builder="hello",result="success"}', 3)
        prom.wait_value('buildyard_builds_finished_total{builder="broken",result="failure"}', 1)
        prom.wait_value('buildyard_builds_pending{builder="slow"}', 2)
        prom.wait_value('buildyard_builds_running{builder="slow"}', 1)
        prom.wait_value('buildyard_builds_pending{builder="hello"}', 0)
        prom.wait_value('buildyard_workers{state="building"}', 1)
        prom.wait_value('buildyard_worker_attaches_total', 1)
        prom.wait_value('buildyard_build_duration_seconds_count{builder="hello"}', 3)
        prom.wait_value('buildyard_build_queue_wait_seconds_count{builder="slow"}', 1)
        prom.wait_value('buildyard_bus_calls_total{interface="org.buildyard.Master1",method="SubmitBuild",'
                        'error="org.buildyard.Error.NoSuchBuilder"}', 1)
        prom.wait_value('buildyard_bus_calls_total{interface="org.buildyard.Master1",method="SubmitBuild",'
                        'error="none"}', 7)
        prom.wait_value('buildyard_bus_calls_total{interface="org.buildyard.WorkerLink1",method="BuildDone",'
                        'error="none"}', 4)
        wait_for(lambda: prom.query("process_cpu_seconds_total > 0"), 10, "process metrics in Prometheus")
        prom.wait_value('up{job="buildyard"}', 1)

        # The queue drains as the builds end; the gauge follows.
        for b in [running] + waiting:
            wait_gate_reached(s, b)
            open_gate(s, b)
            self.assertEqual(s.wait_build(b)[1], "success")
        prom.wait_value('buildyard_builds_pending{builder="slow"}', 0)
        prom.wait_value('buildyard_builds_finished_total{builder="slow",result="success"}', 3)
        prom.wait_value('buildyard_workers{state="idle"}', 1)

        # A worker killed: its detach is counted by reason, and it is offline.
        s.workers["w1"].popen.kill()
        s.wait_attached("w1", False)
        prom.wait_value('buildyard_worker_detaches_total{reason="connection_closed"}', 1)
        prom.wait_value('buildyard_workers{state="offline"}', 1)

        # What was scraped is clean for promtool, with HELP on every family.
        content_type, text = scrape(port)
        self.assertIn("text/plain", content_type)
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), text)
        names = families(text)
        helped = set(re.findall(r"^# HELP (\S+) ", text, re.M))
        self.assertEqual(set(names), helped)
        self.assertEqual(names["buildyard_builds_finished_total"], "counter")
        self.assertEqual(names["buildyard_builds_pending"], "gauge")
        self.assertEqual(names["buildyard_build_duration_seconds"], "histogram")
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                     "process_start_time_seconds"):
            self.assertIn(name, names)
        # No label takes a build ID or a peer address.
        for line in text.splitlines():
            if not line.startswith("#"):
                self.assertNotRegex(line, r'(build|id|peer|address)="', line)

    def test_every_metric_is_documented(self):
        s = self.sys
        port = free_port()
        s.write_config(self.config(port))
        s.start_master()
        _, text = scrape(port)
        with open(os.path.join(SOURCE, "man", "buildyard-masterd.8")) as f:
            page = f.read()
        for name in families(text):
            if name.startswith("buildyard_") or name.startswith("process_"):
                self.assertIn(name, page, f"{name} is not documented in buildyard-masterd(8)")

    def test_metrics_key_errors_busy_ports_and_reload(self):
        s = self.sys
        # A host name is refused with the file, line, section and key.
        s.write_config("[master]\nlisten =\nmetrics = localhost:9100\n")
        r = s.run([os.path.join(BIN, "buildyard-masterd"), "--config",
                   s.config_path, "--check-config"], check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"master\.ini:3: \[master\] metrics: invalid address 'localhost:9100'")

        # A port someone else holds: the master refuses to start and says why.
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            busy = holder.getsockname()[1]
            s.write_config(self.config(busy))
            master = s.start_master(wait_ready=False)
            self.assertNotEqual(master.wait(timeout=20), 0)
            self.assertIn(f"cannot serve metrics on 127.0.0.1:{busy}", master.log())

            # Started without metrics: nothing listens; a reload turns them on,
            # and one to a busy port keeps the server where it was.
            s.write_config(self.config(busy).replace(f"metrics = 127.0.0.1:{busy}", "metrics ="))
            s.start_master()
            port = free_port()
            s.write_config(self.config(port))
            s.call(MASTER_PATH, "org.buildyard.Master1", "Reload")
            wait_for(lambda: "buildyard_master_info" in scrape(port)[1], 10, "metrics after the reload")
            s.write_config(self.config(busy))
            error = f"cannot serve metrics on 127.0.0.1:{busy}"
            before = s.master.log().count(error)  # the log has the failed start's too
            s.master.signal(signal.SIGHUP)
            wait_for(lambda: s.master.log().count(error) > before, 10, "the reload's error")
            self.assertIn(f"metrics stay on 127.0.0.1:{port}", s.master.log())
            self.assertIn("buildyard_master_info", scrape(port)[1])
            # Off again.
            s.write_config(self.config(port).replace(f"metrics = 127.0.0.1:{port}", ""))
            s.call(MASTER_PATH, "org.buildyard.Master1", "Reload")
            with self.assertRaises(OSError):
                scrape(port)


if __name__ == "__main__":
    unittest.main()
