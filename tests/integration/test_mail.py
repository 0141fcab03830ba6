"""Mail against a real SMTP server (aiosmtpd, started by each test):
missing-worker notices, exactly once per loss and across master restarts;
build results; retries while the server is down; STARTTLS and AUTH.

To show that a mail was NOT sent, a test waits for a later mail that the
master must queue after the one in question (one delivery at a time, oldest
first), then counts."""

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import unittest

from harness import (BIN, MASTER_PATH, SignalMonitor, SystemTest, free_port, gate_step, open_gate, start_master_env,
                     wait_for, wait_gate_reached)

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"  # Debian's, which has aiosmtpd
FAST_RETRY = "retry_interval = 0.2"  # a [mail] line: 0.2 s before the first retry



def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Maildir:
    """The maildir an SMTP sink delivers to."""

    def __init__(self, path):
        self.path = path

    def files(self):
        d = os.path.join(self.path, "new")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def messages(self):
        out = []
        for name in self.files():
            with open(os.path.join(self.path, "new", name), "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out

    def subjects(self):
        return sorted(str(m["Subject"]) for m in self.messages())

    def wait(self, count, timeout=20, what=None):
        """Waits until `count` mails have arrived; returns them."""
        wait_for(lambda: len(self.files()) >= count, timeout, what or f"{count} mails in {self.path}")
        return self.messages()

    def wait_subject(self, subject, timeout=20):
        wait_for(lambda: subject in self.subjects(), timeout, f"a mail '{subject}'; have {self.subjects()}")
        return [m for m in self.messages() if str(m["Subject"]) == subject]


def body(message):
    return message.get_body(preferencelist=("plain",)).get_content()


class MailTest(SystemTest):

    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.mail = Maildir(os.path.join(self.sys.dir, "maildir"))

    # --- the SMTP servers -------------------------------------------------

    def start_sink(self, port=None):
        """aiosmtpd's plain sink (no STARTTLS, no AUTH) on 127.0.0.1."""
        port = port or self.port
        p = self.sys._spawn(f"smtp-{port}-{len(self.sys.procs)}",
                            [PYTHON, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Mailbox", self.mail.path])
        wait_for(lambda: port_open(port) or not p.alive(), 20, f"the SMTP sink on port {port}")
        self.assertTrue(p.alive(), p.log())
        return p

    def make_cert(self):
        """A self-signed certificate for 'localhost'; returns (cert, key)."""
        cert, key = os.path.join(self.sys.dir, "smtp-cert.pem"), os.path.join(self.sys.dir, "smtp-key.pem")
        if not os.path.exists(cert):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                            "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                           check=True, capture_output=True)
        return cert, key

    def start_tls_server(self, user=None, password=None):
        """tests/integration/smtp_server.py: STARTTLS required, AUTH if a user is given."""
        cert, key = self.make_cert()
        argv = [PYTHON, os.path.join(HERE, "smtp_server.py"), "--port", str(self.port), "--maildir", self.mail.path,
                "--cert", cert, "--key", key]
        if user:
            argv += ["--user", user, "--password", password]
        p = self.sys._spawn(f"smtp-tls-{len(self.sys.procs)}", argv)
        wait_for(lambda: "ready" in p.log() or not p.alive(), 20, "the TLS SMTP server")
        self.assertTrue(p.alive(), p.log())
        return p

    # --- the master ------------------------------------------------------

    def mail_section(self, extra=""):
        return f"[mail]\nfromaddr = buildyard@ci.example.org\nrelayhost = 127.0.0.1\nport = {self.port}\n" \
               f"starttls = no\n{extra}\n"

    def start_master(self, text=None):
        if text is not None:
            self.sys.write_config("[master]\nname = it\nlisten =\n\n" + text)
        return start_master_env(self.sys, {})

    def kill_master(self, sig=signal.SIGKILL):
        self.sys.master.signal(sig)
        self.sys.master.wait()

    def wprop(self, name, prop):
        return self.sys.worker_prop(name, prop)

    def kill_worker(self, name):
        self.sys.workers[name].signal(signal.SIGKILL)
        self.sys.wait_attached(name, attached=False)

    def queue_rows(self):
        return self.sys.state_rows("SELECT id, state, subject, attempts, last_error FROM mail_queue ORDER BY id")

    def master_log_has(self, text, timeout=20):
        try:
            wait_for(lambda: text in self.sys.master.log(), timeout, f"'{text}' in the master's log")
        except AssertionError as e:
            raise AssertionError(f"{e}; the log:\n{self.sys.master.log()}") from None

    # --- missing workers ---------------------------------------------------

    def test_one_mail_per_loss(self):
        s = self.sys
        self.start_sink()
        self.start_master(self.mail_section() +
                          "[worker w1]\ntype = local\nmissing_timeout = 1\nnotify_on_missing = bob@example.com\n")
        s.start_worker("w1")
        self.assertEqual(self.wprop("w1", "MissingSince"), 0)
        self.assertIs(self.wprop("w1", "MissingNotified"), False)
        path = s.worker_path("w1")
        monitor = SignalMonitor(s, f"type=signal,path={path},member=PropertiesChanged")

        self.kill_worker("w1")
        since = self.wprop("w1", "MissingSince")
        self.assertEqual(since, self.wprop("w1", "LastDisconnected"))
        [m] = self.mail.wait(1)
        self.assertEqual(str(m["Subject"]), "Buildyard worker w1 missing")
        self.assertEqual(str(m["From"]), "buildyard@ci.example.org")
        self.assertEqual(str(m["To"]), "bob@example.com")
        self.assertEqual(m["X-MailFrom"], "buildyard@ci.example.org")
        self.assertEqual(m["X-RcptTo"], "bob@example.com")
        self.assertEqual(m["Auto-Submitted"], "auto-generated")
        self.assertIsNotNone(m["Date"])
        self.assertRegex(m["Message-ID"], r"^<[0-9a-f.]+\.buildyard@.+>$")
        text = body(m)
        self.assertIn(f"Last connected from: {socket.gethostname()}", text)
        self.assertIn("UTC", text)
        self.assertIn("buildyardctl workers", text)
        self.assertIn("systemctl status buildyard-worker@w1.service", text)
        wait_for(lambda: self.wprop("w1", "MissingNotified") is True, 10, "MissingNotified")
        self.assertEqual(self.wprop("w1", "MissingSince"), since)
        # The bus was told, with the value, and MissingSince was not named again.
        [(_, told)] = monitor.wait("PropertiesChanged", lambda p, args: "MissingNotified" in args)
        self.assertEqual(told[told.index("MissingNotified") + 1].split()[-1], "true")
        self.assertNotIn("MissingSince", told)

        # buildyardctl shows it, in the table and in --json.
        row = [line for line in s.ctl("workers").stdout.splitlines() if line.startswith("w1 ")]
        self.assertEqual(len(row), 1)
        self.assertIn("missing since", row[0])
        self.assertIn("mailed", row[0])
        [j] = json.loads(s.ctl("workers", "--json").stdout)
        self.assertEqual((j["missing_since"], j["missing_notified"]), (since, True))

        # Back: not missing. Gone again: a new loss, a new mail.
        s.start_worker("w1")
        self.assertEqual(self.wprop("w1", "MissingSince"), 0)
        self.assertIs(self.wprop("w1", "MissingNotified"), False)
        self.kill_worker("w1")
        self.assertGreater(self.wprop("w1", "MissingSince"), since)
        mails = self.mail.wait(2)
        self.assertEqual(len(mails), 2)
        self.assertNotEqual(mails[0]["Message-ID"], mails[1]["Message-ID"])
        self.assertEqual([str(m["Subject"]) for m in mails], ["Buildyard worker w1 missing"] * 2)
        self.assertEqual([r[1] for r in self.queue_rows()], ["sent", "sent"])

    def test_no_mail_when_the_worker_returns_in_time(self):
        s = self.sys
        self.start_sink()
        timeout = 3
        self.start_master(self.mail_section() +
                          f"[worker w1]\ntype = local\nmissing_timeout = {timeout}\nnotify_on_missing = a@example.com\n"
                          f"[worker w2]\ntype = local\nmissing_timeout = {timeout}\nnotify_on_missing = b@example.com\n")
        s.start_worker("w1")
        s.start_worker("w2")
        self.kill_worker("w1")
        s.start_worker("w1")
        away = self.wprop("w1", "LastConnected") - self.wprop("w1", "LastDisconnected")
        if away >= timeout * 1000000:
            self.fail(f"w1 took {away / 1e6:.1f}s to come back, longer than its missing_timeout")
        self.assertEqual(self.wprop("w1", "MissingSince"), 0)
        # w2 leaves after w1 came back, so its mail falls due after w1's would have.
        self.kill_worker("w2")
        mails = self.mail.wait(1)
        self.assertEqual([str(m["Subject"]) for m in mails], ["Buildyard worker w2 missing"])
        self.assertIs(self.wprop("w1", "MissingNotified"), False)
        self.assertEqual(len(self.queue_rows()), 1)

    def check_one_mail_across_restart(self, sig):
        s = self.sys
        self.start_sink()
        config = (self.mail_section() +
                  "[worker w1]\ntype = local\nmissing_timeout = 3\nnotify_on_missing = a@example.com\n"
                  "[worker never]\ntype = local\nmissing_timeout = 4\nnotify_on_missing = n@example.com\n"
                  "[worker w2]\ntype = local\n"
                  "[builder b]\nworkers = w2\nstep.1 = echo sentinel\n")
        self.start_master(config)
        first_seen = self.wprop("never", "MissingSince")
        self.assertGreater(first_seen, 0)
        s.start_worker("w1")
        self.kill_worker("w1")
        since = self.wprop("w1", "MissingSince")

        # Restart in the missing period: the clocks keep running from the
        # detach and from the first sight, not from the restart.
        self.kill_master(sig)
        self.start_master()
        self.assertEqual(self.wprop("w1", "MissingSince"), since)
        self.assertEqual(self.wprop("never", "MissingSince"), first_seen)
        self.assertIs(self.wprop("w1", "MissingNotified"), False)
        mails = self.mail.wait(2)
        self.assertEqual(sorted(str(m["Subject"]) for m in mails),
                         ["Buildyard worker never missing", "Buildyard worker w1 missing"])

        # Restart again after the mails: they are not sent again. The
        # sentinel is a build result, queued after any mail at start-up.
        wait_for(lambda: [r[1] for r in self.queue_rows()] == ["sent", "sent"], 10, "both mails marked sent")
        self.kill_master(sig)
        self.start_master(config.replace("starttls = no\n", "starttls = no\nbuilders = b\nrecipients = t@example.com\n"))
        self.assertIs(self.wprop("w1", "MissingNotified"), True)
        self.assertIs(self.wprop("never", "MissingNotified"), True)
        s.start_worker("w2")
        bid = s.submit("b")
        s.wait_build(bid)
        self.mail.wait_subject(f"Buildyard b #{bid}: success")
        self.assertEqual(sorted(self.mail.subjects()),
                         [f"Buildyard b #{bid}: success", "Buildyard worker never missing",
                          "Buildyard worker w1 missing"])

    def test_one_mail_across_a_master_killed_with_sigkill(self):
        self.check_one_mail_across_restart(signal.SIGKILL)

    def test_one_mail_across_a_master_stopped_with_sigterm(self):
        self.check_one_mail_across_restart(signal.SIGTERM)

    def test_a_list_of_recipients(self):
        s = self.sys
        self.start_sink()
        to = ["bob@example.com", "alice@example.org", "carol@example.net"]
        self.start_master(self.mail_section() +
                          f"[worker w1]\ntype = local\nmissing_timeout = 1\nnotify_on_missing = {', '.join(to)}\n")
        s.start_worker("w1")
        self.kill_worker("w1")
        [m] = self.mail.wait(1)
        self.assertEqual([a.addr_spec for a in m["To"].addresses], to)
        self.assertEqual(m["X-RcptTo"].split(", "), to)
        self.assertEqual(self.wprop("w1", "NotifyOnMissing"), to)

    def test_default_mail_section(self):
        """No [mail]: localhost:25, from buildyard@<hostname>."""
        if port_open(25):
            self.skipTest("something already listens on 127.0.0.1:25")
        if os.geteuid() != 0:
            self.skipTest("binding port 25 needs root")
        self.start_sink(25)
        self.start_master("[worker w1]\ntype = local\nmissing_timeout = 1\nnotify_on_missing = bob@example.com\n")
        self.sys.start_worker("w1")
        self.kill_worker("w1")
        [m] = self.mail.wait(1)
        self.assertEqual(str(m["From"]), f"buildyard@{socket.gethostname()}")
        self.assertEqual(m["X-MailFrom"], f"buildyard@{socket.gethostname()}")
        self.assertEqual(m["X-RcptTo"], "bob@example.com")

    def test_missing_timeout_zero_sends_nothing(self):
        s = self.sys
        self.start_sink()
        self.start_master(self.mail_section() +
                          "[worker w0]\ntype = local\nmissing_timeout = 0\nnotify_on_missing = zero@example.com\n"
                          "[worker w1]\ntype = local\nmissing_timeout = 2\nnotify_on_missing = one@example.com\n")
        s.start_worker("w0")
        s.start_worker("w1")
        self.kill_worker("w0")
        self.kill_worker("w1")
        self.mail.wait(1)
        self.assertEqual(self.mail.subjects(), ["Buildyard worker w1 missing"])
        self.assertGreater(self.wprop("w0", "MissingSince"), 0)  # missing, just not mailed
        self.assertIs(self.wprop("w0", "MissingNotified"), False)

    def test_reload_rearms_a_running_timer(self):
        s = self.sys
        self.start_sink()
        section = "[worker w1]\ntype = local\nmissing_timeout = {}\nnotify_on_missing = a@example.com\n"
        self.start_master(self.mail_section() + section.format(3600))
        s.start_worker("w1")
        self.kill_worker("w1")
        self.assertIs(self.wprop("w1", "MissingNotified"), False)
        s.write_config("[master]\nname = it\nlisten =\n\n" + self.mail_section() + section.format(1))
        s.call(MASTER_PATH, "org.buildyard.Master1", "Reload")
        self.assertEqual(self.wprop("w1", "MissingTimeout"), 1)
        self.mail.wait(1)
        self.assertEqual(self.mail.subjects(), ["Buildyard worker w1 missing"])

    # --- build results -----------------------------------------------------

    def build_config(self, builders, steps_nightly):
        return (self.mail_section(f"builders = {builders}\nrecipients = team@example.org, qa@example.org") +
                "[worker w1]\ntype = local\nmissing_timeout = 1\nnotify_on_missing = ops@example.org\n"
                # A killed w1's build is rerun at once (test_orphans covers the wait).
                "lost_build_grace = 0\n"
                "[builder nightly]\nworkers = w1\n" +
                "".join(f"step.{i} = {step}\n" for i, step in enumerate(steps_nightly, 1)) +
                "[builder other]\nworkers = w1\nstep.1 = echo other\n")

    def test_build_mail_with_a_builders_filter(self):
        s = self.sys
        self.start_sink()
        steps = ["for i in $(seq 1 60); do echo log line $i; done; echo .dot at the start; exit 3"]
        self.start_master(self.build_config("nightly", steps))
        s.start_worker("w1")
        other = s.submit("other")
        self.assertEqual(s.wait_build(other), (other, "success"))
        nightly = s.submit("nightly")
        self.assertEqual(s.wait_build(nightly), (nightly, "failure"))
        [m] = self.mail.wait(1)  # none for "other", which finished first
        self.assertEqual(str(m["Subject"]), f"Buildyard nightly #{nightly}: failure")
        self.assertEqual([a.addr_spec for a in m["To"].addresses], ["team@example.org", "qa@example.org"])
        self.assertEqual(m["X-RcptTo"], "team@example.org, qa@example.org")
        text = body(m)
        self.assertIn("Worker:    w1", text)
        self.assertIn("Duration:  ", text)
        self.assertIn("exit status 3", text)
        lines = text.splitlines()
        self.assertEqual(lines[-2], ".dot at the start")  # dot-stuffing undone by the server
        self.assertTrue(lines[-1].startswith("--- failure: exit status 3, after "), lines[-1])
        self.assertIn("log line 60", lines)
        self.assertIn("log line 13", lines)
        # The last 50 lines of the log: 48 log lines, the dot line and the
        # result line that ends a failed build's log.
        self.assertNotIn("log line 12", lines)

    def test_build_mail_with_empty_builders(self):
        s = self.sys
        self.start_sink()
        self.start_master(self.build_config("", ["echo hi"]))
        s.start_worker("w1")
        bid = s.submit("nightly")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.kill_worker("w1")  # its missing mail comes after any build mail
        mails = self.mail.wait(1)
        self.assertEqual([str(m["Subject"]) for m in mails], ["Buildyard worker w1 missing"])

    def test_a_retry_is_not_mailed(self):
        s = self.sys
        self.start_sink()
        self.start_master(self.build_config("nightly", [gate_step(s)]))
        s.start_worker("w1")
        first = s.submit("nightly")
        wait_gate_reached(s, first)
        self.kill_worker("w1")
        self.assertEqual(s.build_prop(first, "Result"), "retry")
        rerun = int(s.build_prop(first, "RetriedAs"))
        s.start_worker("w1")
        wait_gate_reached(s, rerun)
        open_gate(s, rerun)
        self.assertEqual(s.wait_build(rerun), (rerun, "success"))
        self.mail.wait_subject(f"Buildyard nightly #{rerun}: success")
        self.assertEqual(self.mail.subjects(), [f"Buildyard nightly #{rerun}: success"])

    # --- delivery ----------------------------------------------------------

    def test_server_down_then_up_delivers_exactly_once(self):
        s = self.sys
        config = (self.mail_section(FAST_RETRY) +
                  "[worker w1]\ntype = local\nmissing_timeout = 1\nnotify_on_missing = a@example.com\n")
        self.start_master(config)
        s.start_worker("w1")
        self.kill_worker("w1")
        self.master_log_has("cannot send mail 1 \"Buildyard worker w1 missing\" to a@example.com")
        self.assertIn(f"127.0.0.1:{self.port}", s.master.log())
        wait_for(lambda: self.queue_rows() and self.queue_rows()[0][3] >= 2, 20, "a second attempt")
        self.assertEqual(self.queue_rows()[0][1], "queued")

        # The master dies with the mail queued; the server comes up; the
        # restarted master delivers it, once.
        self.kill_master()
        self.start_sink()
        self.start_master(None)
        [m] = self.mail.wait(1)
        self.assertEqual(str(m["Subject"]), "Buildyard worker w1 missing")
        wait_for(lambda: self.queue_rows()[0][1] == "sent", 10, "the mail marked sent")
        self.master_log_has("mail 1 \"Buildyard worker w1 missing\" sent to a@example.com")
        self.assertEqual(len(self.queue_rows()), 1)
        self.assertEqual(len(self.mail.files()), 1)

    def test_a_mail_that_cannot_be_sent_for_long_is_given_up(self):
        s = self.sys
        self.start_master(self.mail_section(FAST_RETRY + "\ngive_up_after = 1.5") +
                          "[worker w1]\ntype = local\nmissing_timeout = 1\nnotify_on_missing = a@example.com\n")
        s.start_worker("w1")
        self.kill_worker("w1")
        self.master_log_has("gave up on mail 1 \"Buildyard worker w1 missing\" to a@example.com")
        self.assertEqual(self.queue_rows()[0][1], "failed")

    def test_a_bad_address_is_a_config_error(self):
        s = self.sys
        path = s.write_config("[worker w1]\ntype = local\nnotify_on_missing = bob@example.com, not-an-address\n")
        r = s.run([os.path.join(BIN, "buildyard-masterd"), "--check-config", "--config", path], check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"{path}:3: [worker w1] notify_on_missing: invalid address 'not-an-address'", r.stderr)
        path = s.write_config("[mail]\nfromaddr = buildyard\n")
        r = s.run([os.path.join(BIN, "buildyard-masterd"), "--check-config", "--config", path], check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"{path}:2: [mail] fromaddr: invalid address 'buildyard'", r.stderr)

    # --- STARTTLS and AUTH -----------------------------------------------------

    def tls_section(self, starttls, extra=""):
        cert, _ = self.make_cert()
        return (f"[mail]\nfromaddr = buildyard@ci.example.org\nrelayhost = localhost\nport = {self.port}\n"
                f"starttls = {starttls}\ntls_ca_file = {cert}\n{extra}\n"
                "[worker w1]\ntype = local\nmissing_timeout = 1\nnotify_on_missing = a@example.com\n")

    def test_starttls_required_but_not_offered(self):
        s = self.sys
        sink = self.start_sink()  # plain: no STARTTLS
        self.start_master(self.tls_section("required", FAST_RETRY))
        s.start_worker("w1")
        self.kill_worker("w1")
        self.master_log_has("does not offer STARTTLS, and [mail] starttls = required")
        self.assertEqual(self.mail.files(), [])
        self.assertEqual(self.queue_rows()[0][1], "queued")
        # Kept, and delivered over TLS once a server offers it.
        sink.stop()
        self.start_tls_server()
        [m] = self.mail.wait(1)
        self.assertEqual(str(m["Subject"]), "Buildyard worker w1 missing")
        self.assertEqual(m["X-TLS"], "yes")

    def test_starttls_if_available_and_auth(self):
        s = self.sys
        secret = os.path.join(s.dir, "smtp.secret")
        with open(secret, "w") as f:
            f.write("s3cret\n")
        self.start_tls_server(user="buildyard", password="s3cret")
        self.start_master(self.tls_section("if-available", f"username = buildyard\npassword_file = {secret}"))
        s.start_worker("w1")
        self.kill_worker("w1")
        [m] = self.mail.wait(1)
        self.assertEqual(m["X-TLS"], "yes")
        self.assertEqual(m["X-Auth"], "buildyard")

    def test_auth_with_a_wrong_password_is_logged_and_kept(self):
        s = self.sys
        secret = os.path.join(s.dir, "smtp.secret")
        with open(secret, "w") as f:
            f.write("wrong\n")
        self.start_tls_server(user="buildyard", password="s3cret")
        self.start_master(self.tls_section("required",
                                           f"username = buildyard\npassword_file = {secret}\n{FAST_RETRY}"))
        s.start_worker("w1")
        self.kill_worker("w1")
        self.master_log_has("cannot send mail 1")
        self.assertIn("refused AUTH as buildyard (535", s.master.log())
        self.assertRegex(s.master.log(), r"server reply: 530")
        self.assertEqual(self.mail.files(), [])
        self.assertEqual(self.queue_rows()[0][1], "queued")

    def test_starttls_no_never_uses_tls(self):
        s = self.sys
        self.start_tls_server()  # it wants STARTTLS before MAIL FROM
        self.start_master(self.tls_section("no", FAST_RETRY))
        s.start_worker("w1")
        self.kill_worker("w1")
        self.master_log_has("cannot send mail 1")
        self.assertRegex(s.master.log(), r"server reply: 530")
        self.assertEqual(self.mail.files(), [])

    def test_a_refused_recipient_does_not_resend_to_the_others(self):
        s = self.sys
        self.start_tls_server()
        self.start_master(self.tls_section("required", FAST_RETRY).replace(
            "notify_on_missing = a@example.com", "notify_on_missing = ok@example.com, refuse@example.com"))
        s.start_worker("w1")
        self.kill_worker("w1")
        [m] = self.mail.wait(1)
        self.assertEqual(m["X-RcptTo"], "ok@example.com")
        self.assertEqual([a.addr_spec for a in m["To"].addresses], ["ok@example.com", "refuse@example.com"])
        self.master_log_has("refused the recipients refuse@example.com: 550 5.1.1 No such user here")
        # Tried again for the refused one only: still the one mail.
        wait_for(lambda: self.queue_rows()[0][3] >= 3, 20, "two more attempts")
        self.assertEqual(len(self.mail.files()), 1)
        self.assertEqual(s.state_rows("SELECT recipients FROM mail_queue"), [('["refuse@example.com"]',)])

    def test_if_available_takes_any_certificate_without_tls_ca_file(self):
        """Opportunistic TLS: encrypted, certificate not checked (a local relay's snakeoil)."""
        s = self.sys
        self.start_tls_server()
        self.start_master(self.tls_section("if-available").replace(f"tls_ca_file = {self.make_cert()[0]}\n", ""))
        s.start_worker("w1")
        self.kill_worker("w1")
        [m] = self.mail.wait(1)
        self.assertEqual(m["X-TLS"], "yes")

    def test_an_untrusted_certificate_is_refused(self):
        s = self.sys
        self.start_tls_server()
        other = os.path.join(s.dir, "other-ca.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        os.path.join(s.dir, "other-key.pem"), "-out", other, "-days", "2", "-subj", "/CN=other"],
                       check=True, capture_output=True)
        self.start_master(self.tls_section("required", FAST_RETRY).replace(self.make_cert()[0], other))
        s.start_worker("w1")
        self.kill_worker("w1")
        self.master_log_has("the server's certificate is not trusted")
        self.assertEqual(self.mail.files(), [])


if __name__ == "__main__":
    unittest.main()
