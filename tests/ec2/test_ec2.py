"""EC2 latent workers end to end, against the strict local EC2 stand-in
(ec2_standin.py: every request checked against botocore's EC2 model and
its SigV4 signature verified by botocore's signer). No AWS is involved.

The master starts an instance through buildyard-latentd when a build
waits; when the stand-in's instance reaches running it starts a real
buildyard-workerd --latent, which reads its user data from the stand-in's
IMDSv2, attaches over TCP with its one-time token and runs the build.
Covered: a build on a fresh instance (tags, user data, ClientToken),
build_wait_timeout 0 / 600 / negative, a retried RunInstances launching one
instance, spot with on-demand fallback, throttling, a leaked instance
reaped, an instance terminated under a running build or before its worker
attached, a failed start (quarantine, LastStartError, mail), the credential
sources, and the secret kept out of every log."""

import json
import os
import re
import secrets
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from ec2_standin import Ec2StandIn  # noqa: E402
from harness import (BIN, LATENT, LATENT_PATH, SystemTest, free_port, gate_dir, gate_step,  # noqa: E402
                     master_ini, open_gate, start_latentd, start_master_env, wait_for, wait_gate_reached)
from test_mail import PYTHON, Maildir, port_open  # noqa: E402

KEY_ID = "AKIDBUILDYARDTEST01"
AMI = "ami-0123456789abcdef0"


class Ec2Test(SystemTest):
    counter = 0

    def setUp(self):
        super().setUp()
        Ec2Test.counter += 1
        self.master_name = f"ec{os.getpid()}-{Ec2Test.counter}"
        # A secret no log, property or error may show.
        self.secret = "Sekr1t" + secrets.token_hex(16)
        self.standin = Ec2StandIn(os.path.join(self.sys.dir, "ec2"), {KEY_ID: self.secret},
                                  worker_argv=[os.path.join(BIN, "buildyard-workerd")]).start()
        self.addCleanup(self.standin.stop)
        self.port = free_port()
        gate_dir(self.sys)
        self.latentd = None

    def write_config(self, worker_extra="", extra_sections=""):
        e1 = "\n".join([
            "type = latent", "backend = ec2", f"master_address = 127.0.0.1:{self.port}", "missing_timeout = 120",
            "ec2.region = us-east-1", f"ec2.endpoint = {self.standin.url}", f"ec2.ami = {AMI}",
            "ec2.instance_type = t3.micro", "ec2.tags = team=ci", *worker_extra.splitlines()])
        builders = {"where": (["e1"], ["pwd"]), "gated": (["e1"], [gate_step(self.sys)])}
        self.sys.write_config(master_ini({"e1": e1}, builders, name=self.master_name, listen=f"127.0.0.1:{self.port}",
                                         master_lines=extra_sections))

    def start_daemons(self, latentd_env=None):
        env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": self.secret,
               "AWS_EC2_METADATA_DISABLED": "true"}
        env.update(latentd_env or {})
        self.latentd = start_latentd(self.sys, env,
                                     settings={"health_interval": "0.5", "lease_check_interval": "0.5"})
        self.master = start_master_env(self.sys, {})

    def latent_call(self, method, *args):
        return json.loads(self.sys.busctl("call", LATENT, LATENT_PATH, LATENT, method, *args).stdout)["data"]

    def latent_prop(self, name):
        return json.loads(self.sys.busctl("get-property", LATENT, LATENT_PATH, LATENT, name).stdout)["data"]

    def prop(self, name):
        return self.sys.worker_prop("e1", name)

    def wait_state(self, state, timeout=30):
        wait_for(lambda: self.prop("State") == state, timeout, f"worker e1 to be {state}")

    def live(self):
        return self.standin.live(**{"buildyard:owner": self.master_name})

    def wait_no_instance(self, timeout=30):
        wait_for(lambda: not self.live(), timeout, "every instance to be terminated")

    def instance_of(self, log):
        """The instance a `pwd` step ran on."""
        m = re.search(r"/instances/(i-[0-9a-f]+)", log)
        self.assertIsNotNone(m, log)
        return m.group(1)

    def run_build(self, builder="where", timeout=60):
        build_id = self.sys.submit(builder)
        _, result = self.sys.wait_build(build_id, timeout)
        log = self.sys.read_log(build_id)
        self.assertEqual(result, "success", log)
        return log

    def all_logs(self):
        texts = [p.log() for p in self.sys.procs]
        for i in self.standin.instances.values():
            if i.worker_log and os.path.exists(i.worker_log):
                with open(i.worker_log, errors="replace") as f:
                    texts.append(f.read())
        return texts

    def assert_no_secret_anywhere(self):
        for text in self.all_logs():
            self.assertNotIn(self.secret, text)
        for name in ("Instance", "LastStartError", "Info", "Properties"):
            self.assertNotIn(self.secret, str(self.prop(name)))
        self.assertNotIn(self.secret, str(self.latent_call("ListInstances")))

    # --- tests -------------------------------------------------------------

    def test_a_build_runs_on_a_fresh_tagged_instance_that_goes_when_idle(self):
        self.write_config("build_wait_timeout = 0")
        self.start_daemons()
        self.assertEqual(self.prop("Backend"), "ec2")
        log = self.run_build()
        instance_id = self.instance_of(log)
        i = self.standin.instances[instance_id]
        start = self.prop("InstanceStart")
        for tags in (i.tags, i.volume_tags):
            self.assertEqual(tags["buildyard:owner"], self.master_name)
            self.assertEqual(tags["buildyard:worker"], "e1")
            self.assertEqual(tags["buildyard:start"], start)
            self.assertEqual(tags["team"], "ci")
        self.assertEqual(i.params["ClientToken"], f"buildyard-{start}-ondemand")
        self.assertEqual(i.market, "on-demand")
        user_data = i.user_data.decode()
        self.assertIn("buildyard.worker=e1\n", user_data)
        self.assertIn(f"buildyard.master=127.0.0.1:{self.port}\n", user_data)
        token = re.search(r"buildyard.token=(\S+)", user_data).group(1)
        # The worker said where its identity came from, and not the token.
        with open(i.worker_log) as f:
            worker_log = f.read()
        self.assertIn(f"identity from the user data from the EC2 metadata service at {self.standin.url}meta/"
                      f"{instance_id}", worker_log)
        self.assertNotIn(token, worker_log)
        for text in self.all_logs():
            self.assertNotIn(token, text)
        # The first describe of the new instance was NotFound, and the start went on.
        self.assertIn(("InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist"),
                      self.standin.rejected)
        # build_wait_timeout = 0: terminated once the build is over.
        self.wait_no_instance()
        self.wait_state("offline")
        self.assertIn(instance_id, [p["InstanceIds"][0] for p in self.standin.actions("TerminateInstances")])
        log2 = self.run_build()
        self.assertNotEqual(self.instance_of(log2), instance_id)
        self.assert_no_secret_anywhere()

    def test_build_wait_timeout_600_keeps_the_instance_for_the_next_build(self):
        self.write_config("build_wait_timeout = 600")
        self.start_daemons()
        first = self.instance_of(self.run_build())
        self.wait_state("idle")
        self.assertEqual(self.instance_of(self.run_build()), first)
        self.assertEqual(len(self.standin.actions("RunInstances")), 1)
        self.assertEqual([i.id for i in self.live()], [first])
        self.master.stop(timeout=60)
        self.wait_no_instance()

    def test_negative_build_wait_timeout_keeps_it_until_the_master_stops(self):
        self.write_config("build_wait_timeout = -1")
        self.start_daemons()
        first = self.instance_of(self.run_build())
        self.wait_state("idle")
        time.sleep(2)
        self.assertEqual([i.id for i in self.live()], [first])
        self.assertEqual(self.standin.instances[first].state, "running")
        self.master.stop(timeout=60)
        self.wait_no_instance()
        self.assertTrue(self.latentd.alive())

    def test_a_retried_run_instances_launches_one_instance(self):
        self.write_config("build_wait_timeout = 0")
        self.standin.lose_next_run_answer = True
        self.start_daemons()
        self.run_build()
        runs = self.standin.actions("RunInstances")
        self.assertEqual(len(runs), 2, "the lost answer was not retried")
        self.assertEqual(runs[0]["ClientToken"], runs[1]["ClientToken"])
        self.assertEqual(len(self.standin.instances), 1, "a retry launched a second instance")
        self.assertIn("EC2 RunInstances: InternalError", self.latentd.log())

    def test_spot_falls_back_to_on_demand_and_says_so(self):
        self.write_config("ec2.spot = fallback\nec2.max_price = 0.02\nbuild_wait_timeout = 600")
        self.standin.refuse_spot = "InsufficientInstanceCapacity"
        self.start_daemons()
        instance_id = self.instance_of(self.run_build())
        runs = self.standin.actions("RunInstances")
        self.assertEqual([r.get("InstanceMarketOptions", {}).get("MarketType") for r in runs], ["spot", None])
        self.assertEqual(runs[0]["InstanceMarketOptions"]["SpotOptions"]["MaxPrice"], "0.02")
        self.assertNotEqual(runs[0]["ClientToken"], runs[1]["ClientToken"])
        self.assertEqual(self.standin.instances[instance_id].market, "on-demand")
        # The worker can attach and build before latentd's own describe has
        # seen the instance running and answered the master's Start: the
        # property follows that answer.
        expected = f"{instance_id} (on-demand, spot refused: InsufficientInstanceCapacity)"
        wait_for(lambda: self.prop("Instance") == expected, 10, "Instance to name the fallback")
        self.assertIn("spot launch refused", self.latentd.log())
        self.assertIn("launching on-demand instead", self.latentd.log())
        # With capacity back, the next start is a spot instance again.
        self.master.stop(timeout=60)
        self.wait_no_instance()
        self.standin.refuse_spot = None
        self.master = start_master_env(self.sys, {})
        spot = self.instance_of(self.run_build())
        self.assertEqual(self.standin.instances[spot].market, "spot")
        wait_for(lambda: self.prop("Instance") == f"{spot} (spot)", 10, "Instance to name the spot instance")

    def test_spot_only_refused_is_a_failed_start_quarantined_and_mailed(self):
        maildir = Maildir(os.path.join(self.sys.dir, "maildir"))
        smtp = free_port()
        self.sys._spawn("smtp", [PYTHON, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp}",
                                 "-c", "aiosmtpd.handlers.Mailbox", maildir.path])
        wait_for(lambda: port_open(smtp), 20, "the SMTP sink")
        mail = f"[mail]\nfromaddr = by@example.org\nrelayhost = 127.0.0.1\nport = {smtp}\nstarttls = no"
        self.write_config("ec2.spot = yes\nnotify_on_missing = ops@example.org", extra_sections=mail)
        self.standin.refuse_spot = "SpotMaxPriceTooLow"
        self.start_daemons()
        build = self.sys.submit("where")
        _, result = self.sys.wait_build(build, 30)
        self.assertEqual(result, "retry")
        self.assertIn("SpotMaxPriceTooLow", self.sys.read_log(build))
        self.assertIn("SpotMaxPriceTooLow", self.prop("LastStartError"))
        self.assertGreater(self.prop("QuarantinedUntil"), 0)
        self.assertEqual(self.prop("StartFailures"), 1)
        (message,) = maildir.wait(1)
        self.assertEqual(message["Subject"], "Buildyard worker e1 missing")
        self.assertIn("SpotMaxPriceTooLow", message.get_body().get_content())
        self.assertEqual(len(self.standin.actions("RunInstances")), 1)  # no on-demand under spot = yes
        self.assertFalse(self.live())
        self.assert_no_secret_anywhere()

    def test_an_instance_terminated_before_its_worker_attaches_fails_the_start(self):
        self.write_config("build_wait_timeout = 0")
        self.standin.worker_argv = None  # an AMI whose worker never comes up
        self.start_daemons()
        build = self.sys.submit("where")
        wait_for(lambda: [i for i in self.live() if i.state == "running"], 30, "the instance to run")
        (instance,) = self.live()
        self.standin.terminate_behind_back(instance.id)
        _, result = self.sys.wait_build(build, 30)
        self.assertEqual(result, "retry")
        self.assertIn(f"instance {instance.id} is", self.prop("LastStartError"))
        self.assertIn("Server.SpotInstanceTermination", self.prop("LastStartError"))
        self.assertGreater(self.prop("QuarantinedUntil"), 0)
        self.assertEqual(self.prop("StartFailures"), 1)

    def test_throttled_calls_are_retried_with_back_off(self):
        self.write_config("build_wait_timeout = 0")
        self.start_daemons()
        self.standin.throttle_next = 4
        began = time.monotonic()
        self.run_build()
        self.assertEqual(self.standin.throttle_next, 0)
        self.assertEqual([c for c, _ in self.standin.rejected].count("RequestLimitExceeded"), 4)
        self.assertIn("RequestLimitExceeded", self.latentd.log())
        self.assertIn("retrying (attempt 5)", self.latentd.log())
        # 250 + 500 + 1000 + 2000 ms at least half of each: the back-off was taken.
        self.assertGreater(time.monotonic() - began, 1.8)

    def test_a_leaked_tagged_instance_is_reaped_and_others_left_alone(self):
        self.write_config()
        leak = self.standin.launch_untracked({"buildyard:owner": self.master_name, "buildyard:worker": "e1",
                                              "buildyard:start": secrets.token_hex(16)})
        other = self.standin.launch_untracked({"buildyard:owner": "another-master", "buildyard:worker": "e1",
                                               "buildyard:start": secrets.token_hex(16)})
        untagged = self.standin.launch_untracked({"Name": "someone's"})
        self.start_daemons()
        # The reaper's pass at latentd's start.
        wait_for(lambda: self.standin.instances[leak].state in ("shutting-down", "terminated"), 20,
                 "the leak to be terminated")
        self.assertEqual(self.standin.instances[other].state, "running")
        self.assertEqual(self.standin.instances[untagged].state, "running")
        self.assertGreaterEqual(self.latent_prop("ReapedLeaks"), 1)
        # Reap() on demand finds a new one.
        leak2 = self.standin.launch_untracked({"buildyard:owner": self.master_name, "buildyard:worker": "e1",
                                               "buildyard:start": secrets.token_hex(16)})
        self.assertEqual(self.latent_call("Reap")[0], 1)
        self.assertIn(self.standin.instances[leak2].state, ("shutting-down", "terminated"))
        self.assertEqual(self.standin.instances[other].state, "running")
        filters = self.standin.actions("DescribeInstances")[0]["Filters"]
        self.assertIn({"Name": "tag:buildyard:owner", "Values": [self.master_name]}, filters)
        self.assert_no_secret_anywhere()

    def test_credentials_from_a_systemd_credential_before_the_environment(self):
        self.write_config("build_wait_timeout = 0\nec2.credential = ec2-keys")
        creds = os.path.join(self.sys.dir, "credentials")
        os.makedirs(creds)
        with open(os.path.join(creds, "ec2-keys"), "w") as f:
            f.write(f"[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {self.secret}\n")
        # The environment's keys are wrong: were they used, every call would fail.
        self.start_daemons({"CREDENTIALS_DIRECTORY": creds, "AWS_SECRET_ACCESS_KEY": "wrong-secret"})
        self.run_build()
        self.assertNotIn("SignatureDoesNotMatch", [c for c, _ in self.standin.rejected])
        self.assert_no_secret_anywhere()

    def test_credentials_from_the_instance_role_refreshed_before_expiry(self):
        self.write_config("build_wait_timeout = 0")
        # Five minutes and two seconds: stale for latentd (which refreshes
        # five minutes ahead) two seconds after it fetched them.
        key_id, secret, token, _ = self.standin.set_role(302)
        self.start_daemons({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_EC2_METADATA_DISABLED": "",
                            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.standin.url})
        self.run_build()
        self.assertGreater(self.standin.role_signed, 0)
        first = self.standin.role_fetches
        self.assertGreaterEqual(first, 1)
        time.sleep(2.5)
        self.run_build()
        self.assertGreater(self.standin.role_fetches, first, "the expiring credentials were not fetched again")
        for text in self.all_logs():
            self.assertNotIn(secret, text)
            self.assertNotIn(token, text)

    def test_list_instances_shows_the_ec2_instance(self):
        self.write_config("build_wait_timeout = -1")
        self.start_daemons()
        instance_id = self.instance_of(self.run_build())
        # latentd's own describe may see the instance running after its
        # worker has attached and built (see the spot test).
        wait_for(lambda: self.latent_call("ListInstances")[0][0][3] == "running", 10,
                 "latentd to see the instance running")
        (row,) = self.latent_call("ListInstances")[0]
        self.assertEqual(row[0], "e1")
        self.assertEqual(row[2], "ec2")
        self.assertEqual(row[3], "running")
        self.assertEqual(row[4], f"{instance_id} (on-demand)")
        self.assertEqual(self.prop("Instance"), f"{instance_id} (on-demand)")

    def test_an_instance_terminated_under_a_build_ends_it_retry_and_it_reruns(self):
        self.write_config("build_wait_timeout = 0")
        self.start_daemons()
        build = self.sys.submit("gated")
        wait_gate_reached(self.sys, build, 60)
        (instance,) = self.live()
        for later in range(build + 1, build + 10):
            open_gate(self.sys, later)
        self.standin.terminate_behind_back(instance.id)
        _, result = self.sys.wait_build(build, 60)
        self.assertEqual(result, "retry")
        final, result = self.sys.wait_build(int(self.sys.build_prop(build, "RetriedAs")), 90, follow_retry=True)
        self.assertEqual(result, "success", self.sys.read_log(final))
        self.assertGreaterEqual(len(self.standin.actions("RunInstances")), 2)


if __name__ == "__main__":
    unittest.main()
