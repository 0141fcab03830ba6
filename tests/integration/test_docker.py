"""Docker latent workers end to end, against a real Docker Engine API:
Podman's compatible service (tests/lib/podman.sh) with an image built offline
from buildyard-workerd (tests/docker/make-image.sh). The master starts a
container through buildyard-latentd when a build waits, the worker inside
attaches over TCP with its one-time token, runs the build, and the container
goes as build_wait_timeout says. Also: a container that dies before or after
attaching, wrong and stale tokens, the reaper after kill -9 of latentd,
other masters' and unlabelled containers left alone, and an engine whose
socket is missing and then comes back."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from harness import (BIN, LATENT, LATENT_PATH, SOURCE, SystemTest, free_port, master_ini, process_gone,
                     start_latentd, start_master_env, wait_for)

PODMAN_SH = os.path.join(SOURCE, "tests", "lib", "podman.sh")
MAKE_IMAGE = os.path.join(SOURCE, "tests", "docker", "make-image.sh")
IMAGE = "localhost/buildyard-worker:test"
ENTRY_IMAGE = "localhost/buildyard-worker:entry"

# Says whether the container is fresh: /tmp of a container outlives builds
# only while the container does.
FRESH_STEP = ("if [ -e /tmp/seen ]; then echo container reused; else echo fresh container; touch /tmp/seen; fi; "
              "echo worker $BUILDYARD_WORKER")
# Marks its build started, then waits (at most 120 s) for its gate; /gates is
# a directory of the test mounted into the container.
GATED_STEP = ("touch /gates/started-$BUILDYARD_BUILD_ID; i=0; "
              "while [ ! -e /gates/go-$BUILDYARD_BUILD_ID ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("docker", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Engine:
    """The few Engine API calls the tests make themselves."""

    def __init__(self, sock):
        self.sock = sock

    def request(self, method, path, body=None):
        conn = UnixHTTPConnection(self.sock)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, "/v1.41" + path, json.dumps(body) if body is not None else None, headers)
            r = conn.getresponse()
            data = r.read()
            return r.status, data
        finally:
            conn.close()

    def containers(self, label):
        filters = urllib.parse.quote(json.dumps({"label": [label]}))
        status, data = self.request("GET", f"/containers/json?all=1&filters={filters}")
        assert status == 200, data
        return json.loads(data)

    def inspect(self, name):
        status, data = self.request("GET", f"/containers/{name}/json")
        if status == 404:
            return None
        assert status == 200, data
        return json.loads(data)

    def run(self, name, env, labels=None, image=IMAGE):
        """Creates and starts a container running buildyard-workerd --latent."""
        body = {"Image": image, "Cmd": ["buildyard-workerd", "--latent"], "Env": env,
                "HostConfig": {"NetworkMode": "host"}}
        if labels:
            body["Labels"] = labels
        status, data = self.request("POST", f"/containers/create?name={name}", body)
        assert status == 201, data
        status, data = self.request("POST", f"/containers/{name}/start")
        assert status in (204, 304), data
        return json.loads(self.request("GET", f"/containers/{name}/json")[1])["Id"]

    def kill(self, name):
        status, data = self.request("POST", f"/containers/{name}/kill")
        assert status == 204, data

    def remove(self, name):
        self.request("DELETE", f"/containers/{name}?force=1")


class Podman:
    """A private Podman service with the test images, stopped by PID."""

    def __init__(self, dir):
        self.dir = dir
        self.sock = os.path.join(dir, "docker.sock")

    def start(self):
        subprocess.run([PODMAN_SH, "start", self.dir], check=True, timeout=120)
        for args in ([IMAGE], [ENTRY_IMAGE, "--entrypoint"]):
            subprocess.run([MAKE_IMAGE, self.dir, os.path.join(BIN, "buildyard-workerd"), *args], check=True,
                           timeout=120, stdout=subprocess.DEVNULL)
        return self

    def stop(self):
        subprocess.run([PODMAN_SH, "stop", self.dir], timeout=180)


PODMAN = None


def setUpModule():
    global PODMAN
    # Short and under /tmp: a unix socket's path holds at most 107 bytes.
    PODMAN = Podman(tempfile.mkdtemp(prefix="buildyard-dk-", dir="/tmp"))
    try:
        PODMAN.start()
    except BaseException:
        PODMAN.stop()
        raise


def tearDownModule():
    if PODMAN:
        PODMAN.stop()



class DockerTest(SystemTest):
    counter = 0

    def setUp(self):
        super().setUp()
        DockerTest.counter += 1
        # Each test has a master of its own on the shared engine.
        self.master_name = f"dk{os.getpid()}-{DockerTest.counter}"
        self.engine = Engine(PODMAN.sock)
        self.port = free_port()
        self.gates = os.path.join(self.sys.dir, "gates")
        os.makedirs(self.gates)
        os.chmod(self.gates, 0o777)
        self.raw = []  # containers the test makes itself
        self.addCleanup(self.remove_containers)

    def remove_containers(self):
        for c in self.engine.containers(f"org.buildyard.master={self.master_name}"):
            self.engine.remove(c["Id"])
        for name in self.raw:
            self.engine.remove(name)

    @property
    def container(self):
        return f"buildyard-{self.master_name}-c1"

    def write_config(self, worker_extra="", host=None, image=IMAGE, missing_timeout=120):
        host = host or PODMAN.sock
        c1 = "\n".join([
            "type = latent", "backend = docker", f"master_address = 127.0.0.1:{self.port}",
            f"missing_timeout = {missing_timeout}", f"docker.host = unix://{host}", f"docker.image = {image}",
            "docker.pull = never", f"docker.volumes = {self.gates}:/gates", *worker_extra.splitlines()])
        builders = {"fresh": (["c1"], [FRESH_STEP]), "gated": (["c1"], [GATED_STEP])}
        self.sys.write_config(master_ini({"c1": c1}, builders, name=self.master_name, listen=f"127.0.0.1:{self.port}"))

    def start_daemons(self, latentd_env=None):
        self.latentd = start_latentd(self.sys, latentd_env,
                                     settings={"health_interval": "0.5", "lease_check_interval": "0.5"})
        self.master = start_master_env(self.sys, {})

    def state(self):
        return self.sys.worker_prop("c1", "State")

    def wait_state(self, state, timeout=60):
        wait_for(lambda: self.state() == state, timeout, f"worker c1 to be {state}")

    def wait_container_gone(self, timeout=60):
        wait_for(lambda: not self.engine.containers(f"org.buildyard.master={self.master_name}"), timeout,
                 "the container to be removed")

    def wait_gate(self, build_id, timeout=60):
        path = os.path.join(self.gates, f"started-{build_id}")
        wait_for(lambda: os.path.exists(path) or self.sys.build_prop(build_id, "State") == "finished", timeout,
                 f"build {build_id} to reach its gate")
        self.assertTrue(os.path.exists(path), f"build {build_id} ended before its gate:\n{self.sys.read_log(build_id)}")

    def open_gate(self, build_id):
        open(os.path.join(self.gates, f"go-{build_id}"), "w").close()

    def run_build(self, builder="fresh", timeout=60):
        build_id = self.sys.submit(builder)
        _, result = self.sys.wait_build(build_id, timeout)
        log = self.sys.read_log(build_id)
        self.assertEqual(result, "success", log)
        return log

    def env_of(self, container):
        return dict(e.split("=", 1) for e in self.engine.inspect(container)["Config"]["Env"])

    # --- tests ---------------------------------------------------------

    def test_each_build_gets_a_fresh_container_by_default(self):
        self.write_config()
        self.start_daemons()
        self.assertEqual(self.state(), "offline")
        self.assertEqual(self.sys.worker_prop("c1", "BuildWaitTimeout"), 0)
        self.assertEqual(self.sys.worker_prop("c1", "Backend"), "docker")
        log = self.run_build()
        self.assertIn("\nfresh container\n", log)
        self.assertIn("\nworker c1\n", log)
        # build_wait_timeout defaults to 0 for Docker: gone once the build ends.
        self.wait_container_gone()
        self.wait_state("offline")
        log = self.run_build()
        self.assertIn("\nfresh container\n", log)
        self.assertNotIn("\ncontainer reused\n", log)
        self.wait_container_gone()
        self.assertIn("build_wait_timeout is 0", self.master.log())

    def test_the_container_is_named_labelled_and_given_its_identity(self):
        self.write_config()
        self.start_daemons()
        build_id = self.sys.submit("gated")
        self.wait_gate(build_id)
        c = self.engine.inspect(self.container)
        self.assertIsNotNone(c, "no container named " + self.container)
        labels = c["Config"]["Labels"]
        start = self.sys.worker_prop("c1", "InstanceStart")
        self.assertEqual(labels["org.buildyard.master"], self.master_name)
        self.assertEqual(labels["org.buildyard.worker"], "c1")
        self.assertEqual(labels["org.buildyard.start"], start)
        self.assertEqual(len(start), 32)
        env = self.env_of(self.container)
        self.assertEqual(env["BUILDYARD_WORKER_NAME"], "c1")
        self.assertEqual(env["BUILDYARD_MASTER"], f"127.0.0.1:{self.port}")
        self.assertEqual(len(env["BUILDYARD_TOKEN"]), 64)
        self.assertEqual(self.sys.worker_prop("c1", "Instance"), self.container)
        self.assertEqual(self.state(), "building")
        self.open_gate(build_id)
        self.assertEqual(self.sys.wait_build(build_id, 60)[1], "success")
        self.wait_container_gone()

    def test_positive_build_wait_timeout_keeps_the_container_until_idle(self):
        self.write_config("build_wait_timeout = 3\ndocker.shutdown_timeout = 2")
        self.start_daemons()
        self.assertIn("\nfresh container\n", self.run_build())
        first = self.engine.inspect(self.container)
        self.assertIsNotNone(first)
        self.assertTrue(first["State"]["Running"])
        self.wait_state("idle")
        log = self.run_build()
        self.assertIn("\ncontainer reused\n", log)
        self.assertEqual(self.engine.inspect(self.container)["Id"], first["Id"])
        self.wait_container_gone()
        self.wait_state("offline")

    def test_negative_build_wait_timeout_keeps_it_until_the_master_stops(self):
        self.write_config("build_wait_timeout = -1")
        self.start_daemons()
        self.run_build()
        self.wait_state("idle")
        first = self.engine.inspect(self.container)["Id"]
        # Long past what a positive timeout would allow here, it still runs.
        time.sleep(3)
        c = self.engine.inspect(self.container)
        self.assertEqual(c["Id"], first)
        self.assertTrue(c["State"]["Running"])
        self.assertEqual(self.state(), "idle")
        self.assertIn("\ncontainer reused\n", self.run_build())
        self.master.stop(timeout=60)
        self.wait_container_gone()
        self.assertTrue(self.latentd.alive())

    def test_a_container_that_exits_before_attaching_fails_the_start_with_its_log(self):
        # The image's own entrypoint prints 60 lines and exits 3.
        self.write_config("docker.env = TEST_EXIT_STATUS=3, TEST_LINES=60", image=ENTRY_IMAGE, missing_timeout=600)
        self.start_daemons()
        build_id = self.sys.submit("fresh")
        # Well before missing_timeout.
        _, result = self.sys.wait_build(build_id, 60)
        self.assertEqual(result, "retry")
        log = self.sys.read_log(build_id)
        self.assertIn("container exited with status 3", log)
        self.assertIn("line 11\n", log)
        self.assertIn("line 60\n", log)
        self.assertNotIn("line 10\n", log)
        self.assertGreater(self.sys.worker_prop("c1", "QuarantinedUntil"), 0)
        self.assertIn("container exited with status 3", self.sys.worker_prop("c1", "LastStartError"))
        self.assertIn("container exited with status 3", self.master.log())
        self.wait_container_gone()

    def test_a_container_that_dies_while_attached_detaches_and_its_build_is_retried(self):
        self.write_config()
        self.start_daemons()
        build_id = self.sys.submit("gated")
        self.wait_gate(build_id)
        first_start = self.sys.worker_prop("c1", "InstanceStart")
        # The builds that rerun it pass their gates at once.
        for later in range(build_id + 1, build_id + 10):
            self.open_gate(later)
        self.engine.kill(self.container)
        _, result = self.sys.wait_build(build_id, 60)
        self.assertEqual(result, "retry")
        self.assertIn("worker c1 detached", self.master.log())
        retried = int(self.sys.build_prop(build_id, "RetriedAs"))
        final, result = self.sys.wait_build(retried, 90, follow_retry=True)
        self.assertEqual(result, "success", self.sys.read_log(final))
        self.assertTrue(os.path.exists(os.path.join(self.gates, f"started-{final}")))
        # It ran in a container of another start.
        starts = set(re.findall(r"starting a machine for latent worker c1 \(start ([0-9a-f]{32})\)", self.master.log()))
        self.assertIn(first_start, starts)
        self.assertGreaterEqual(len(starts), 2)
        self.wait_container_gone()

    def test_wrong_and_stale_tokens_are_refused_and_the_current_container_keeps_running(self):
        self.write_config("build_wait_timeout = 1")
        self.start_daemons()
        first = self.sys.submit("gated")
        self.wait_gate(first)
        stale_token = self.env_of(self.container)["BUILDYARD_TOKEN"]
        self.open_gate(first)
        self.assertEqual(self.sys.wait_build(first, 60)[1], "success")
        self.wait_container_gone()

        second = self.sys.submit("gated")
        self.wait_gate(second)
        current = self.engine.inspect(self.container)["Id"]
        self.assertNotEqual(self.env_of(self.container)["BUILDYARD_TOKEN"], stale_token)
        address = f"127.0.0.1:{self.port}"
        # The master's pin, as latentd gave it: without it a worker speaks
        # plain TCP, which a TLS master drops before it reads any token.
        pin = self.env_of(self.container)["BUILDYARD_MASTER_FINGERPRINT"]
        for name, token in (("stale", stale_token), ("wrong", "f" * 64)):
            raw = f"{self.master_name}-{name}"
            self.raw.append(raw)
            self.engine.run(raw, [f"BUILDYARD_WORKER_NAME=c1", f"BUILDYARD_MASTER={address}",
                                  f"BUILDYARD_TOKEN={token}", f"BUILDYARD_MASTER_FINGERPRINT={pin}"])
        wait_for(lambda: "token of an earlier start" in self.master.log() and "wrong token" in self.master.log(),
                 60, "both logins to be refused")
        # The current container and its build carry on.
        c = self.engine.inspect(self.container)
        self.assertEqual(c["Id"], current)
        self.assertTrue(c["State"]["Running"])
        self.assertTrue(self.sys.worker_prop("c1", "Connected"))
        self.assertEqual(self.sys.build_prop(second, "State"), "running")
        self.open_gate(second)
        self.assertEqual(self.sys.wait_build(second, 60)[1], "success")

    def test_the_reaper_removes_the_container_of_a_start_cut_by_kill_9(self):
        self.write_config()
        other = f"{self.master_name}-other"
        unlabelled = f"{self.master_name}-plain"
        self.raw += [other, unlabelled]
        self.engine.run(other, ["BUILDYARD_WORKER_NAME=c1", "BUILDYARD_MASTER=127.0.0.1:1", "BUILDYARD_TOKEN=x"],
                        labels={"org.buildyard.master": "another-master", "org.buildyard.worker": "c1",
                                "org.buildyard.start": "ab" * 16})
        self.engine.run(unlabelled, ["BUILDYARD_WORKER_NAME=c1", "BUILDYARD_MASTER=127.0.0.1:1",
                                     "BUILDYARD_TOKEN=x"])
        # latentd alone, whose creations report back late: kill it between
        # the container's creation and its answer.
        latentd = start_latentd(self.sys, {"BUILDYARD_LATENT_TEST_CREATE_DELAY": "120"})
        start = "0123456789abcdef0123456789abcdef"
        call = self.sys._spawn("dbus-send-start",
                               ["dbus-send", "--system", "--print-reply", "--reply-timeout=180000", f"--dest={LATENT}",
                                LATENT_PATH, "org.buildyard.Latent1.Start", "string:c1", f"string:{start}",
                                f"string:127.0.0.1:{self.port}", "string:" + "c" * 64, "string:",
                                "uint64:600000000"])
        wait_for(lambda: self.engine.inspect(self.container), 60, "the container to be created")
        latentd.signal(signal.SIGKILL)
        wait_for(lambda: process_gone(latentd.pid), 10, "latentd to die")
        call.stop()
        self.assertEqual(self.engine.inspect(self.container)["Config"]["Labels"]["org.buildyard.start"], start)

        restarted = start_latentd(self.sys, name="latentd-2")
        # Reaped before READY=1.
        self.assertIsNone(self.engine.inspect(self.container))
        self.assertIn(f"reaped leaked container", restarted.log())
        self.assertIn(f"of worker c1 (start {start})", restarted.log())
        reaped = self.sys.run(["busctl", "--system", "--json=short", "get-property", LATENT, LATENT_PATH,
                               "org.buildyard.Latent1", "ReapedLeaks"])
        self.assertEqual(json.loads(reaped.stdout)["data"], 1)
        # Another master's container and an unlabelled one are never touched.
        self.assertTrue(self.engine.inspect(other)["State"]["Running"])
        self.assertTrue(self.engine.inspect(unlabelled)["State"]["Running"])

    def test_a_missing_engine_socket_is_a_clear_error_until_the_engine_comes_back(self):
        later = Podman(tempfile.mkdtemp(prefix="buildyard-dk-later-", dir="/tmp"))
        os.rmdir(later.dir)  # the engine is not there at all yet
        self.addCleanup(later.stop)
        self.write_config(host=later.sock)
        self.start_daemons()
        build_id = self.sys.submit("fresh")
        _, result = self.sys.wait_build(build_id, 60)
        self.assertEqual(result, "retry")
        expected = f"cannot reach the Docker engine at unix://{later.sock}: No such file or directory"
        self.assertIn(expected, self.sys.read_log(build_id))
        self.assertIn(expected, self.latentd.log())
        self.assertGreater(self.sys.worker_prop("c1", "QuarantinedUntil"), 0)

        # The engine comes up at that socket; the quarantine (10 s) ends and
        # the retried build runs.
        os.makedirs(later.dir)
        later.start()
        later_engine = Engine(later.sock)
        retried = int(self.sys.build_prop(build_id, "RetriedAs"))
        final, result = self.sys.wait_build(retried, 90, follow_retry=True)
        self.assertEqual(result, "success", self.sys.read_log(final))
        self.assertIn("\nfresh container\n", self.sys.read_log(final))
        wait_for(lambda: not later_engine.containers(f"org.buildyard.master={self.master_name}"), 60,
                 "the container to be removed")


if __name__ == "__main__":
    unittest.main()
