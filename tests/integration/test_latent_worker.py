"""buildyard-workerd --latent against a real master over TCP on 127.0.0.1.

The worker takes its name, master, token and the master's TLS fingerprint
from systemd credentials or the environment (the kernel command line is
test_vm's). The master here knows
vm1 as a standard worker whose password is the token: the token goes
exactly where a password goes in the Handshake1 exchange."""

import os
import secrets

from harness import BIN, SystemTest, free_port, wait_for
from tlslib import fingerprint_of_pem, self_signed

TOKEN = secrets.token_hex(32)


class LatentWorkerTest(SystemTest):

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.basedir = os.path.join(self.sys.dir, "latent-basedir")
        # The master's certificate is known before it starts, as a guest
        # may boot before its master.
        cert, key = self_signed(self.sys.dir, "master", cn="it")
        self.fingerprint = fingerprint_of_pem(cert)
        self.sys.write_config(f"""
            [master]
            name = it
            listen = 127.0.0.1:{self.port}
            tls_certificate = {cert}
            tls_key = {key}

            [worker vm1]
            password = {TOKEN}

            [builder probe]
            workers = vm1
            step.1 = echo "worker=$BUILDYARD_WORKER dir=$PWD"
            """)

    def latent_worker(self, env, name="latent"):
        environment = {k: v for k, v in self.sys.env.items()
                       if not k.startswith("BUILDYARD_") and k != "CREDENTIALS_DIRECTORY"}
        environment.update(env)
        return self.sys._spawn(name, [os.path.join(BIN, "buildyard-workerd"), "--latent", "--basedir", self.basedir],
                               env=environment, notify=True)

    def identity_env(self, token=TOKEN):
        return {"BUILDYARD_WORKER_NAME": "vm1", "BUILDYARD_MASTER": f"127.0.0.1:{self.port}",
                "BUILDYARD_TOKEN": token, "BUILDYARD_MASTER_FINGERPRINT": self.fingerprint}

    def run_probe(self):
        build_id = self.sys.submit("probe")
        _, result = self.sys.wait_build(build_id)
        log = self.sys.read_log(build_id)
        self.assertEqual(result, "success", log)
        self.assertIn(f"worker=vm1 dir={self.basedir}/probe", log)

    def test_identity_from_the_environment(self):
        self.sys.start_master()
        w = self.latent_worker(self.identity_env())
        self.sys.wait_attached("vm1")
        self.assertIn("latent worker vm1 of the master at 127.0.0.1:", w.log())
        self.assertIn("(identity from the environment)", w.log())
        self.assertNotIn(TOKEN, w.log())
        self.assertRegex(self.sys.master.log(), r"worker vm1 attached \(connection tcp#")
        self.run_probe()

    def test_credentials_win_over_the_environment(self):
        creds = os.path.join(self.sys.dir, "credentials")
        os.makedirs(creds)
        for key, value in (("worker", "vm1"), ("master", f"127.0.0.1:{self.port}"), ("token", TOKEN),
                           ("master_fingerprint", self.fingerprint)):
            with open(os.path.join(creds, f"buildyard.{key}"), "w") as f:
                f.write(value + "\n")  # as files usually end
        self.sys.start_master()
        env = self.identity_env(token="not-the-token")
        env["CREDENTIALS_DIRECTORY"] = creds
        w = self.latent_worker(env)
        self.sys.wait_attached("vm1")
        self.assertIn(f"(identity from the credentials in {creds})", w.log())
        self.run_probe()

    def test_a_latent_worker_pins_the_fingerprint_that_came_with_its_token(self):
        self.sys.start_master()
        env = self.identity_env()
        env["BUILDYARD_MASTER_FINGERPRINT"] = "sha256:" + "cd" * 32
        w = self.latent_worker(env)
        wait_for(lambda: f"presented certificate {self.fingerprint}, not the one pinned" in w.log(), 20,
                 "the worker to refuse a master with another certificate")
        self.assertIs(self.sys.worker_prop("vm1", "Connected"), False)

    def test_a_wrong_token_is_refused_and_not_retried(self):
        self.sys.start_master()
        w = self.latent_worker(self.identity_env(token=secrets.token_hex(32)))
        self.assertEqual(w.wait(timeout=20), 1, w.log())
        self.assertIn("authentication failed", w.log())
        self.assertRegex(self.sys.master.log(), r"invalid login from worker 'vm1': wrong password")
        self.assertIs(self.sys.worker_prop("vm1", "Connected"), False)

    def test_a_partial_identity_is_a_configuration_error(self):
        w = self.latent_worker({"BUILDYARD_WORKER_NAME": "vm1", "BUILDYARD_TOKEN": TOKEN})
        self.assertEqual(w.wait(timeout=20), 1, w.log())
        self.assertIn("the environment: BUILDYARD_WORKER_NAME and BUILDYARD_TOKEN are set but BUILDYARD_MASTER "
                      "is missing", w.log())

    def test_started_before_its_master_it_attaches_once_the_master_listens(self):
        # As a guest that boots before its master listens: nothing answers
        # on the port yet, and connect() is refused.
        w = self.latent_worker(self.identity_env())
        w.wait_notify("READY=1", timeout=20)  # waiting counts as started
        wait_for(lambda: w.log().count("cannot connect to the master at 127.0.0.1:") >= 2, 20,
                 "two refused attempts")
        self.sys.start_master()
        # The backoff after two failures is at most 4 s.
        self.sys.wait_attached("vm1", timeout=30)
        self.run_probe()
