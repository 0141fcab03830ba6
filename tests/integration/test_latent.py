"""Latent workers end to end, without a real guest: buildyard-masterd and
buildyard-latentd on a private bus, the real libvirt backend on libvirt's
test:///default driver with real qcow2 overlays. Nothing boots on the test
driver, so the test plays the hypervisor (FakeGuests): for each domain that
latentd creates it reads the identity the guest would get from the domain's
XML (BUILDYARD_LATENT_TEST_DOMAIN_DIR) and runs `buildyard-workerd --latent`
with it; when the domain goes, so does that worker.

Covers: start on demand, each build_wait_timeout case, the substantiation
timeout and the quarantine (and its reset), a failed start reported by mail
once, a wrong, stale or copied token, Worker1's latent properties, and the
machines stopped at master shutdown."""

import json
import os
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

from harness import (BIN, LATENT, LATENT_PATH, MASTER_PATH, SystemTest, free_port, start_latentd,
                     start_master_env, wait_for)
from test_latentd import TEMPLATE
from test_mail import Maildir, PYTHON, port_open


def identity_of(xml_path):
    """The name, master address, token and master fingerprint that the domain
    gives its guest, from its SMBIOS OEM strings (as systemd would read them)."""
    root = ET.parse(xml_path).getroot()
    creds = {}
    for entry in root.iter("entry"):
        text = entry.text or ""
        prefix = "io.systemd.credential:"
        if text.startswith(prefix) and "=" in text:
            key, value = text[len(prefix):].split("=", 1)
            creds[key] = value
    return creds


class FakeGuests:
    """The hypervisor's part: a guest worker for each domain XML that
    appears, killed when the XML goes (latentd destroyed the domain)."""

    def __init__(self, system, domain_dir):
        self.system = system
        self.dir = domain_dir
        self.boot = True            # False: domains come up, but no worker attaches
        self.guests = {}            # domain file -> Process
        self.tokens = {}            # domain file -> the token its guest got
        self.identities = []        # every identity seen, in order
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        deadline = time.monotonic() + 600  # bounded, whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                self._poll()
            self._stop.wait(0.05)

    def _poll(self):
        present = {f for f in os.listdir(self.dir) if f.endswith(".xml")}
        # A domain's file keeps its name from one start to the next: a new
        # token in a known file is a new domain (the old one went between polls).
        for f in present & set(self.guests):
            try:
                token = identity_of(os.path.join(self.dir, f)).get("buildyard.token")
            except (ET.ParseError, FileNotFoundError):
                continue
            if token != self.tokens.get(f):
                present.discard(f)
        for f in set(self.guests) - present:
            p = self.guests.pop(f)
            self.tokens.pop(f, None)
            if p is not None:
                p.stop(timeout=5)
        for f in present - set(self.guests):
            try:
                ident = identity_of(os.path.join(self.dir, f))
            except (ET.ParseError, FileNotFoundError):
                continue  # still being written, or gone again
            self.identities.append(ident)
            self.tokens[f] = ident.get("buildyard.token")
            self.guests[f] = self.run_guest(ident) if self.boot else None

    def run_guest(self, ident, token=None, tag="guest"):
        env = dict(self.system.env)
        env.update({"BUILDYARD_WORKER_NAME": ident["buildyard.worker"],
                    "BUILDYARD_MASTER": ident["buildyard.master"],
                    "BUILDYARD_TOKEN": token or ident["buildyard.token"]})
        # The master's TLS fingerprint comes beside the token (none: tls = no).
        if "buildyard.master_fingerprint" in ident:
            env["BUILDYARD_MASTER_FINGERPRINT"] = ident["buildyard.master_fingerprint"]
        basedir = os.path.join(self.system.dir, "guests", f"{tag}-{len(self.system.procs)}")
        os.makedirs(basedir)
        return self.system._spawn(f"{tag}-{len(self.system.procs)}",
                                  [os.path.join(BIN, "buildyard-workerd"), "--latent", "--basedir", basedir], env=env)

    def close(self):
        self._stop.set()
        self._thread.join(10)
        with self._lock:
            for p in self.guests.values():
                if p is not None:
                    p.stop(timeout=5)
            self.guests.clear()


class LatentFixture(SystemTest):
    """A master and latentd with latent worker vm1 on libvirt's test driver, its
    guests faked by FakeGuests; the tests are in subclasses."""

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.domains = self.path("domains")
        os.makedirs(self.domains)
        self.template = self.path("vm.xml")
        with open(self.template, "w") as f:
            f.write(TEMPLATE)
        self.base = self.path("base.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", self.base, "16M"], check=True, timeout=60)
        self.guests = FakeGuests(self.sys, self.domains)
        self.addCleanup(self.guests.close)
        self.env = {"BUILDYARD_LATENT_TEST_DOMAIN_DIR": self.domains}
        self.latentd_settings = {"health_interval": "0.5", "reap_interval": "2"}

    def config(self, build_wait=0, missing=30, extra="", base=None, mail=""):
        return (f"[master]\nname = itm\nlisten = 127.0.0.1:{self.port}\n{mail}"
                f"[worker vm1]\ntype = latent\nbackend = libvirt\nmaster_address = 127.0.0.1:{self.port}\n"
                f"build_wait_timeout = {build_wait}\nmissing_timeout = {missing}\n"
                f"libvirt.uri = test:///default\nlibvirt.xml = {self.template}\n"
                f"libvirt.base_image = {base or self.base}\nlibvirt.overlay_dir = {self.path('overlays')}\n"
                f"libvirt.shutdown_timeout = 0\n{extra}"
                "[builder hello]\nworkers = vm1\nstep.1 = echo hello from $BUILDYARD_WORKER\n")

    def start(self, text, master_env=None):
        self.sys.write_config(text)
        self.latentd = start_latentd(self.sys, self.env, settings=self.latentd_settings)
        env = dict(self.env)
        env.update(master_env or {})
        self.master = start_master_env(self.sys, env)

    def state(self):
        return self.sys.worker_prop("vm1", "State")

    def wait_state(self, state, timeout=20):
        wait_for(lambda: self.state() == state, timeout, f"vm1 to be {state} (now {self.state()})")

    def instances(self):
        r = self.sys.busctl("call", LATENT, LATENT_PATH, LATENT, "ListInstances")
        return json.loads(r.stdout)["data"][0]

    def overlays(self):
        d = self.path("overlays")
        return [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs] if os.path.isdir(d) else []

    def log_has(self, proc, text, timeout=20):
        wait_for(lambda: text in proc.log(), timeout, f"'{text}' in the log of {proc.log_path}")

    def run_build(self, timeout=30):
        build = self.sys.submit("hello")
        self.sys.wait_build(build, timeout=timeout)
        return build


class LatentWorkerTest(LatentFixture):

    def test_a_waiting_build_starts_the_machine_and_build_wait_timeout_zero_stops_it(self):
        self.start(self.config(build_wait=0))
        self.assertEqual(self.state(), "offline")
        self.assertEqual(self.sys.worker_prop("vm1", "Type"), "latent")
        self.assertEqual(self.sys.worker_prop("vm1", "BuildWaitTimeout"), 0)
        build = self.sys.submit("hello")
        self.sys.wait_build(build, timeout=30)
        self.assertEqual(self.sys.build_prop(build, "Result"), "success", self.sys.read_log(build))
        self.assertIn("hello from vm1", self.sys.read_log(build))
        self.assertEqual(self.sys.build_prop(build, "Worker"), "vm1")
        # The guest got this start's identity, and dialled the master over TCP.
        ident = self.guests.identities[0]
        self.assertEqual(ident["buildyard.worker"], "vm1")
        self.assertEqual(ident["buildyard.master"], f"127.0.0.1:{self.port}")
        self.assertRegex(ident["buildyard.token"], "^[0-9a-f]{64}$")
        self.assertRegex(self.sys.worker_prop("vm1", "InstanceStart"), "^[0-9a-f]{32}$")
        self.assertEqual(self.sys.worker_prop("vm1", "Instance"), "buildyard-itm-vm1")
        # build_wait_timeout = 0: the machine goes as soon as the build ends.
        self.wait_state("offline")
        wait_for(lambda: self.instances() == [], 20, "latentd to have no instance")
        self.assertEqual(self.overlays(), [])
        self.assertFalse(self.sys.worker_prop("vm1", "Connected"))
        log = self.master.log()
        for transition in ("offline -> substantiating", "substantiating -> building", "building -> insubstantiating",
                           "insubstantiating -> offline"):
            self.assertIn(f"latent worker vm1: {transition}", log)
        # Stopped on purpose: not missing.
        self.assertEqual(self.sys.worker_prop("vm1", "MissingSince"), 0)
        # The next build gets a fresh machine, with a new start and token.
        second = self.run_build()
        self.assertEqual(self.sys.build_prop(second, "Result"), "success")
        self.assertEqual(len(self.guests.identities), 2)
        self.assertNotEqual(self.guests.identities[0]["buildyard.token"], self.guests.identities[1]["buildyard.token"])

    def test_positive_build_wait_timeout_stops_an_idle_machine_later(self):
        self.start(self.config(build_wait=2))
        build = self.run_build()
        self.assertEqual(self.sys.build_prop(build, "Result"), "success")
        self.wait_state("idle")
        self.assertEqual(len(self.instances()), 1)
        # A build while it idles reuses the running machine.
        again = self.run_build()
        self.assertEqual(self.sys.build_prop(again, "Result"), "success")
        self.assertEqual(len(self.guests.identities), 1)
        self.wait_state("offline", timeout=20)
        self.assertIn("idle for 2 s (build_wait_timeout)", self.master.log())
        wait_for(lambda: self.instances() == [], 20, "the instance to go")

    def test_negative_build_wait_timeout_keeps_the_machine_and_allows_reattach(self):
        self.start(self.config(build_wait=-1))
        self.run_build()
        self.wait_state("idle")
        # It never stops on its own: still idle after several health checks.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            self.assertEqual(self.state(), "idle")
            time.sleep(0.2)
        self.assertEqual(len(self.instances()), 1)
        # Its worker drops and comes back with the same start's token.
        with self.guests._lock:
            (domain_file, guest), = self.guests.guests.items()
            guest.stop()
            self.wait_state("substantiating")
            self.guests.guests[domain_file] = self.guests.run_guest(self.guests.identities[0], tag="again")
        self.wait_state("idle")
        self.assertEqual(self.sys.worker_prop("vm1", "StartFailures"), 0)
        self.assertEqual(len(self.guests.identities), 1)
        # A master shutdown still stops it.
        self.master.stop()
        try:
            wait_for(lambda: self.instances() == [], 30, "the master's shutdown to stop the machine")
        except AssertionError:
            print(self.master.log()[-3000:], self.latentd.log()[-3000:])
            raise
        self.assertEqual(self.overlays(), [])

    def test_a_reload_that_changes_the_type_stops_the_machine(self):
        self.start(self.config(build_wait=-1))
        self.run_build()
        self.wait_state("idle")
        self.assertEqual(len(self.instances()), 1)
        # vm1 becomes a plain remote worker: its machine must not run on
        # unowned until its lease runs out.
        self.sys.write_config(
            f"[master]\nname = itm\nlisten = 127.0.0.1:{self.port}\n"
            "[worker vm1]\npassword = secret\n"
            "[builder hello]\nworkers = vm1\nstep.1 = true\n")
        self.sys.call(MASTER_PATH, "org.buildyard.Master1", "Reload")
        self.assertEqual(self.sys.worker_prop("vm1", "Type"), "standard")
        self.log_has(self.master, "latent worker vm1 is no longer of type latent; stopping its machine")
        wait_for(lambda: self.instances() == [], 20, "the machine of the former latent worker to go")
        self.assertEqual(self.overlays(), [])
        wait_for(lambda: not self.sys.worker_prop("vm1", "Connected"), 20, "its guest's link to drop")

    def test_substantiation_timeout_reruns_the_build_and_quarantine_resets_on_success(self):
        self.guests.boot = False
        self.start(self.config(build_wait=0, missing=2))
        build = self.sys.submit("hello")
        self.sys.wait_build(build, timeout=20)
        self.assertEqual(self.sys.build_prop(build, "Result"), "retry")
        self.assertIn("did not attach within 2 s", self.sys.read_log(build))
        self.assertEqual(self.sys.worker_prop("vm1", "StartFailures"), 1)
        self.assertIn("did not attach within 2 s", self.sys.worker_prop("vm1", "LastStartError"))
        until = self.sys.worker_prop("vm1", "QuarantinedUntil")
        self.assertGreater(until, time.time() * 1e6)
        self.assertLessEqual(until, (time.time() + 11) * 1e6)
        self.assertIn("quarantined for 10 s", self.master.log())
        self.assertIn("quarantined until", self.sys.ctl("workers").stdout)
        # The request waits; the half-made machine is gone.
        rerun = self.sys.build_prop(build, "RetriedAs")
        self.assertEqual(self.sys.build_prop(rerun, "State"), "pending")
        self.wait_state("offline")
        wait_for(lambda: self.instances() == [], 20, "the failed start's machine to go")
        # After the quarantine the next start works, and resets it.
        self.guests.boot = True
        self.sys.wait_build(rerun, timeout=40)
        self.assertEqual(self.sys.build_prop(rerun, "Result"), "success")
        self.assertEqual(self.sys.worker_prop("vm1", "StartFailures"), 0)
        self.assertEqual(self.sys.worker_prop("vm1", "QuarantinedUntil"), 0)

    def test_a_failed_start_is_mailed_once_and_quarantined(self):
        maildir = Maildir(self.path("maildir"))
        smtp = free_port()
        self.sys._spawn("smtp", [PYTHON, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp}",
                                 "-c", "aiosmtpd.handlers.Mailbox", maildir.path])
        wait_for(lambda: port_open(smtp), 20, "the SMTP sink")
        mail = f"[mail]\nfromaddr = by@example.org\nrelayhost = 127.0.0.1\nport = {smtp}\nstarttls = no\n"
        self.start(self.config(base=self.path("no-such-base.qcow2"), mail=mail,
                               extra="notify_on_missing = ops@example.org\n"))
        build = self.sys.submit("hello")
        self.sys.wait_build(build, timeout=20)
        self.assertEqual(self.sys.build_prop(build, "Result"), "retry")
        self.assertIn("no-such-base.qcow2", self.sys.read_log(build))
        self.assertIn("no-such-base.qcow2", self.sys.worker_prop("vm1", "LastStartError"))
        maildir.wait(1)
        (message,) = maildir.messages()
        self.assertEqual(message["Subject"], "Buildyard worker vm1 missing")
        self.assertEqual(message["To"], "ops@example.org")
        text = message.get_body().get_content()
        self.assertIn("did not come up", text)
        self.assertIn("no-such-base.qcow2", text)
        self.assertTrue(self.sys.worker_prop("vm1", "MissingNotified"))
        # The second failure, after the 10 s quarantine, is the same trouble: no second mail.
        rerun = self.sys.build_prop(build, "RetriedAs")
        self.sys.wait_build(rerun, timeout=30)
        self.assertEqual(self.sys.build_prop(rerun, "Result"), "retry")
        self.assertEqual(self.sys.worker_prop("vm1", "StartFailures"), 2)
        self.assertIn("quarantined for 20 s", self.master.log())
        self.assertEqual(self.missing_mails_queued(), 1, "a second mail for the same trouble")
        self.assertEqual(len(maildir.messages()), 1)
        # A master restart keeps the streak: the quarantine holds, and the
        # third failure is still the same trouble, mailed already.
        quarantined_until = self.sys.worker_prop("vm1", "QuarantinedUntil")
        self.master.stop()
        self.master = start_master_env(self.sys, self.env)
        self.assertEqual(self.sys.worker_prop("vm1", "StartFailures"), 2)
        self.assertEqual(self.sys.worker_prop("vm1", "QuarantinedUntil"), quarantined_until)
        self.assertIn("no-such-base.qcow2", self.sys.worker_prop("vm1", "LastStartError"))
        self.assertTrue(self.sys.worker_prop("vm1", "MissingNotified"))
        third = self.sys.build_prop(rerun, "RetriedAs")
        self.sys.wait_build(third, timeout=40)
        self.assertEqual(self.sys.build_prop(third, "Result"), "retry")
        self.assertEqual(self.sys.worker_prop("vm1", "StartFailures"), 3)
        self.assertEqual(self.missing_mails_queued(), 1, "a mail after the restart for the same trouble")
        self.assertEqual(len(maildir.messages()), 1)

    def missing_mails_queued(self):
        """The missing mails of vm1 in the master's queue, sent or not. A mail
        is queued in the loop iteration after the failure that calls for it,
        so one more call through the master's loop is enough to see it: no
        sleep, and no wait for the SMTP delivery of a second mail."""
        self.sys.worker_prop("vm1", "StartFailures")
        return self.sys.state_rows("SELECT COUNT(*) FROM mail_queue WHERE worker = 'vm1'")[0][0]

    def test_wrong_stale_and_copied_tokens_are_refused_and_the_machine_keeps_running(self):
        self.start(self.config(build_wait=-1))
        self.run_build()
        self.wait_state("idle")
        current = self.guests.identities[0]
        # A wrong token.
        wrong = self.guests.run_guest(current, token="0" * 64, tag="wrong")
        self.log_has(self.master, "invalid login from latent worker 'vm1': wrong token")
        # A copy of the current machine, with its token, while it is attached.
        copy = self.guests.run_guest(current, tag="copy")
        self.log_has(self.master, "refused a second connection for worker 'vm1'")
        self.assertEqual(self.state(), "idle")
        self.assertEqual(len(self.instances()), 1)
        build = self.run_build()
        self.assertEqual(self.sys.build_prop(build, "Result"), "success")
        wrong.stop()
        copy.stop()
        # A new start; the old start's token is now stale.
        self.sys.call(self.sys.worker_path("vm1"), "org.buildyard.Worker1", "Shutdown", "b", False)
        self.wait_state("offline")
        self.run_build()
        self.assertEqual(len(self.guests.identities), 2)
        stale = self.guests.run_guest(current, tag="stale")
        self.log_has(self.master, "invalid login from latent worker 'vm1': token of an earlier start")
        stale.stop()
        self.assertEqual(self.state(), "idle")
        self.assertTrue(self.sys.worker_prop("vm1", "Connected"))

    def test_latentd_not_running_fails_the_start_clearly(self):
        self.sys.write_config(self.config())
        self.master = start_master_env(self.sys, self.env)
        build = self.sys.submit("hello")
        self.sys.wait_build(build, timeout=20)
        self.assertEqual(self.sys.build_prop(build, "Result"), "retry")
        self.assertIn("buildyard-latentd is not running", self.sys.read_log(build))
        self.assertEqual(self.sys.worker_prop("vm1", "StartFailures"), 1)
        # Once latentd is there, the rerun goes through after the quarantine.
        self.latentd = start_latentd(self.sys, self.env, settings=self.latentd_settings)
        rerun = self.sys.build_prop(build, "RetriedAs")
        self.sys.wait_build(rerun, timeout=40)
        self.assertEqual(self.sys.build_prop(rerun, "Result"), "success")
