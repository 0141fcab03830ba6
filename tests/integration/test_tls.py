"""TLS under the remote workers' connections: what a sniffer sees with and
without it, the master's identity (generated, configured, reloaded), the
worker's trust (pin, CA and host name), channel binding against a relay the
worker trusts by mistake, client certificates, and floods before
authentication. Real master, real workers, real TLS; bytes recorded by a
relay on 127.0.0.1."""

import os
import re
import socket
import ssl
import stat
import struct
import subprocess
import time
import unittest

from harness import BIN, MASTER_PATH, RemoteLinkTest, free_port, master_fingerprint, wait_for
from test_remote import CLIENT, master_config
from tlslib import CA, Relay, fingerprint_of_pem, self_signed, tls_connect

MASTER1 = "org.buildyard.Master1"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def small_call(serial, payload):
    """A little-endian D-Bus method call, org.buildyard.Nothing1.Take(ay)
    on /, with `payload` as its argument."""
    out = bytearray(b"l\1\0\1") + struct.pack("<II", 4 + len(payload), serial) + b"\0\0\0\0"

    def pad(n):
        out.extend(b"\0" * (-len(out) % n))

    for code, sig, value in ((1, b"o", b"/"), (2, b"s", b"org.buildyard.Nothing1"), (3, b"s", b"Take"), (8, b"g", b"ay")):
        pad(8)
        out.extend(bytes([code, 1]) + sig + b"\0")
        if sig == b"g":
            out.extend(bytes([len(value)]) + value + b"\0")
        else:
            pad(4)
            out.extend(struct.pack("<I", len(value)) + value + b"\0")
    struct.pack_into("<I", out, 12, len(out) - 16)
    pad(8)
    return bytes(out) + struct.pack("<I", len(payload)) + payload


class TlsTest(RemoteLinkTest):

    def fingerprint(self):
        return master_fingerprint(self.sys)

    def worker_file(self, name, port=None, host="127.0.0.1", extra=None, password=None):
        """The worker's file; by default it pins the running master's certificate."""
        if extra is None:
            extra = f"master_fingerprint = {self.fingerprint()}\n"
        path = os.path.join(self.sys.dir, "etc", "workers", f"{name}.ini")
        with open(path, "w") as f:
            f.write(f"master = {host}:{port or self.port}\npassword = {password or 'pw-' + name}\n"
                    f"reconnect_max = 2\n{extra}")
        return path

    # --- what travels ------------------------------------------------------

    def captured_build(self, tls):
        """A whole build through a recording relay; returns the bytes seen."""
        s = self.sys
        step = "printf 'ma''rker-%s\\n' 7f3a9c"  # prints marker-7f3a9c, which the command does not contain
        extra_master = "" if tls else "tls = no\n"
        text = master_config(self.port, builders={"b": (["r1"], [step])}).replace(
            "listen =", extra_master + "listen =", 1)
        text = text.replace("password = pw-r1", "password = s3cret-pw-of-r1")
        self.start(text)
        relay = Relay(self.port)
        self.addCleanup(relay.close)
        self.worker_file("r1", port=relay.port, password="s3cret-pw-of-r1",
                         extra=None if tls else "tls = no\n")
        s.start_worker("r1")
        bid = s.submit("b")
        self.assertEqual(s.wait_build(bid), (bid, "success"))
        self.assertIn("marker-7f3a9c", s.read_log(bid))
        return relay.captured()

    def test_nothing_readable_on_the_wire_with_tls(self):
        seen = self.captured_build(tls=True)
        self.assertGreater(len(seen), 1000, "the relay saw the traffic")
        # Each long enough not to occur by chance in kilobytes of ciphertext
        # (the worker's name, "r1", is two bytes: it would, one run in ten).
        for secret in (b"s3cret-pw-of-r1", b"ma''rker", b"marker-7f3a9c", b"AUTH", b"Hello",
                       b"org.buildyard", b"workername"):
            self.assertNotIn(secret, seen)
        self.assertEqual(seen[0], 0x16, "a TLS handshake record comes first")
        self.assertEqual(self.master_lines(r"plain TCP"), [])

    def test_plain_tcp_shows_everything_and_the_master_warns(self):
        seen = self.captured_build(tls=False)
        # The same capture proves the relay sees the traffic: in clear, all of it.
        self.assertIn(b"marker-7f3a9c", seen)
        self.assertIn(b"ma''rker", seen)
        self.assertIn(b"org.buildyard.Handshake1", seen)
        self.assertNotIn(b"s3cret-pw-of-r1", seen, "the password never crosses the wire, even in clear")
        self.assertEqual(len(self.master_lines(r"warning: tls = no: remote workers connect over plain TCP")), 1)
        self.assertEqual(len(self.master_lines(r"warning: worker r1 attached over plain TCP \(tls = no\)")), 1)
        self.assertEqual(self.fingerprint(), "")
        self.assertIn("tls fingerprint: none (tls = no)", self.sys.ctl("status").stdout)

    # --- the master's identity ---------------------------------------------

    def test_generated_identity_is_kept_shown_and_reloaded(self):
        s = self.sys
        self.start(master_config(self.port))
        cert = os.path.join(s.state_dir, "tls-certificate.pem")
        key = os.path.join(s.state_dir, "tls-key.pem")
        for path in (cert, key):
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, path)
        fp = self.fingerprint()
        self.assertEqual(fp, fingerprint_of_pem(cert))
        self.assertTrue(re.fullmatch(r"sha256:[0-9a-f]{64}", fp), fp)
        self.assertEqual(len(self.master_lines(f"TLS certificate for remote workers: {fp} from generated")), 1)
        self.assertIn(f"tls fingerprint: {fp}\n", s.ctl("status").stdout)
        # Kept across a restart.
        s.master.stop()
        self.start(master_config(self.port))
        self.assertEqual(self.fingerprint(), fp)
        self.assertIn("(generated earlier)", s.master.log())

        # A worker pinned to it attaches; then the admin configures another
        # certificate and reloads: the attached worker stays, a new one
        # pinned to the new certificate attaches, the old pin is refused.
        self.worker_file("r1")
        s.start_worker("r1")
        ca = CA(s.dir)
        new_cert, new_key = ca.issue("master2", "127.0.0.1")
        text = master_config(self.port, workers={"r1": "", "r2": "", "r3": ""}).replace(
            "listen =", f"tls_certificate = {new_cert}\ntls_key = {new_key}\nlisten =", 1)
        s.write_config(text)
        s.call(MASTER_PATH, MASTER1, "Reload")
        new_fp = fingerprint_of_pem(new_cert)
        self.assertEqual(self.fingerprint(), new_fp)
        self.assertIn(f"tls fingerprint: {new_fp}\n", s.ctl("status").stdout)
        self.assertIs(s.worker_prop("r1", "Connected"), True)
        self.worker_file("r2")
        s.start_worker("r2")
        self.worker_file("r3", extra=f"master_fingerprint = {fp}\n")
        old_pin = s.start_worker("r3", wait_attached=False)
        wait_for(lambda: f"presented certificate {new_fp}, not the one pinned" in old_pin.log(), 20,
                 "the worker with the old pin to refuse the master")
        self.assertIs(s.worker_prop("r3", "Connected"), False)
        # A reload whose certificate cannot be loaded keeps the current one.
        s.write_config(text.replace(new_key, ca.path))
        s.call(MASTER_PATH, MASTER1, "Reload")
        self.assertEqual(self.fingerprint(), new_fp)
        self.assertTrue(self.master_lines(r"new connections keep the TLS identity " + new_fp))

    def test_configuration_errors(self):
        s = self.sys
        s.write_config(master_config(self.port).replace("listen =", "tls_key = /nonexistent\nlisten =", 1))
        r = s.run([os.path.join(BIN, "buildyard-masterd"), "--config",
                   s.config_path, "--check-config"], check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("[master] tls_key: cannot read /nonexistent", r.stdout + r.stderr)
        path = self.worker_file("r1", extra="")
        r = s.run([os.path.join(BIN, "buildyard-workerd"), "--name", "r1",
                   "--config", path], check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{path}:1: master: a remote master over TLS needs master_fingerprint = sha256:HEX",
                      r.stdout + r.stderr)
        path = self.worker_file("r1", extra="master_fingerprint = sha256:1234\n")
        r = s.run([os.path.join(BIN, "buildyard-workerd"), "--name", "r1",
                   "--config", path], check=False)
        self.assertIn(f"{path}:4: master_fingerprint: invalid fingerprint 'sha256:1234'", r.stdout + r.stderr)

    # --- the worker's trust ------------------------------------------------

    def test_pinned_worker_refuses_another_certificate_and_keeps_trying(self):
        s = self.sys
        self.start(master_config(self.port))
        other = "sha256:" + "ab" * 32
        self.worker_file("r1", extra=f"master_fingerprint = {other}\n")
        w = s.start_worker("r1", wait_attached=False)
        fp = self.fingerprint()
        wait_for(lambda: w.log().count(f"presented certificate {fp}, not the one pinned") >= 2, 20,
                 "two refused attempts")
        self.assertIn("connecting again in", w.log())
        self.assertTrue(w.alive())
        self.assertIs(s.worker_prop("r1", "Connected"), False)

    def test_ca_file_checks_chain_host_and_dates(self):
        s = self.sys
        ca = CA(s.dir)
        cases = {
            "good": (ca.issue("good", "localhost"), None),
            "expired": (ca.issue("expired", "localhost", days=(-30, -1)), "certificate has expired"),
            "wronghost": (ca.issue("wronghost", "elsewhere.example"), "hostname mismatch"),
        }
        for label, ((cert, key), refusal) in cases.items():
            with self.subTest(label):
                port = free_port()
                text = master_config(port, workers={"r1": ""}, builders={"b": (["r1"], ["echo via ca"])})
                s.write_config(text.replace("listen =", f"tls_certificate = {cert}\ntls_key = {key}\nlisten =", 1))
                s.start_master()
                self.worker_file("r1", port=port, host="localhost", extra=f"tls_ca_file = {ca.path}\n")
                if refusal is None:
                    s.start_worker("r1")
                    bid = s.submit("b")
                    self.assertEqual(s.wait_build(bid), (bid, "success"))
                else:
                    w = s.start_worker("r1", wait_attached=False)
                    wait_for(lambda: "TLS handshake failed" in w.log(), 20, "the worker to refuse the master")
                    line = [x for x in w.log().splitlines() if "TLS handshake failed" in x][0]
                    self.assertIn(refusal, line)
                    self.assertIn(f"it presented certificate {fingerprint_of_pem(cert)}", line)
                    self.assertIs(s.worker_prop("r1", "Connected"), False)
                for p in list(s.workers.values()):
                    p.stop()
                s.master.stop()

    # --- channel binding ---------------------------------------------------

    def test_a_relay_the_worker_trusts_by_mistake_cannot_log_in(self):
        s = self.sys
        self.start(master_config(self.port))
        relay_cert, relay_key = self_signed(s.dir, "relay")
        relay = Relay(self.port, tls=(relay_cert, relay_key))
        self.addCleanup(relay.close)
        self.worker_file("r1", port=relay.port, extra=f"master_fingerprint = {fingerprint_of_pem(relay_cert)}\n")
        w = s.start_worker("r1", wait_attached=False)
        self.assertNotEqual(w.wait(timeout=20), 0, w.log())
        self.assertIn("authentication failed", w.log())
        self.assertEqual(len(self.master_lines(
            r"warning: invalid login from worker 'r1': its TLS session is not the one with this master "
            r"\(channel binding differs\), so something between them relays the connection "
            r"\(127\.0\.0\.1:\d+\)$")), 1, s.master.log())
        self.assertIs(s.worker_prop("r1", "Connected"), False)
        self.assertGreaterEqual(relay.accepted, 1)

    # --- client certificates -----------------------------------------------

    def test_client_certificates(self):
        s = self.sys
        ca = CA(s.dir)
        c1, k1 = ca.issue("client1", "r1", client=True)
        os.makedirs(os.path.join(s.dir, "stranger"))
        stranger_ca = CA(os.path.join(s.dir, "stranger"))  # another CA altogether
        c3, k3 = stranger_ca.issue("client3", "r3", client=True)
        self.start(master_config(self.port, workers={
            "r1": f"tls_client_fingerprint = {fingerprint_of_pem(c1)}\n",
            "r2": "tls_client_fingerprint = sha256:" + "00" * 32 + "\n",
            "r3": f"tls_client_ca = {ca.path}\n",
            "r4": f"tls_client_ca = {ca.path}\n",
        }))
        pin = f"master_fingerprint = {self.fingerprint()}\n"
        self.worker_file("r1", extra=pin + f"tls_certificate = {c1}\ntls_key = {k1}\n")
        s.start_worker("r1")
        # r2 presents no certificate; r3 one from a CA its section does not name.
        self.worker_file("r2", extra=pin)
        self.worker_file("r3", extra=pin + f"tls_certificate = {c3}\ntls_key = {k3}\n")
        for name in ("r2", "r3"):
            w = s.start_worker(name, wait_attached=False)
            self.assertNotEqual(w.wait(timeout=20), 0, w.log())
            self.assertIn("authentication failed", w.log())
        self.assertTrue(self.master_lines(r"refused worker 'r2' from 127\.0\.0\.1:\d+: it presented no client "
                                          r"certificate$"))
        self.assertTrue(self.master_lines(r"refused worker 'r3' from 127\.0\.0\.1:\d+: its client certificate "
                                          r"sha256:[0-9a-f]{64} does not verify against"))
        c4, k4 = ca.issue("client4", "r4", client=True)
        self.worker_file("r4", extra=pin + f"tls_certificate = {c4}\ntls_key = {k4}\n")
        s.start_worker("r4")

    # --- floods before authentication --------------------------------------

    def test_huge_messages_before_authentication_cost_little(self):
        s = self.sys
        self.start(master_config(self.port, workers={"g1": ""}, builders={"b": (["g1"], ["echo fine"])},
                                 master_lines="auth_timeout = 20"))
        self.worker_file("g1")
        s.start_worker("g1")
        pid = s.master.pid
        # Under AddressSanitizer (tests/sanitize) the bound is on the growth:
        # its shadow and its quarantine of freed blocks (a 32 MiB start) are
        # not the master's. The plain build keeps the whole bound. Each header
        # is refused on arrival: were it handed to sd-bus, sd-bus would size
        # its read buffer to the 127 MiB declared, and under AddressSanitizer
        # each reallocation of it copies it whole and quarantines the old one
        # (hundreds of MiB, more under load).
        budget = 64 * 1024 + (rss_kib(pid) if os.environ.get("BUILDYARD_SANITIZED") else 0)
        # A method call declaring a 127 MiB body, then as much of it as the
        # master takes, on 16 connections at once.
        header = struct.pack("<cBBBII", b"l", 1, 0, 1, 127 * 1024 * 1024, 1) + struct.pack("<I", 0)
        socks = []
        for _ in range(16):
            c = tls_connect(self.port)
            c.sendall(b"\0AUTH ANONYMOUS 74657374\r\n")
            self.assertTrue(c.recv(1024).startswith(b"OK "))
            c.sendall(b"BEGIN\r\n" + header)
            c.setblocking(False)
            socks.append(c)
        peak = 0
        filler = b"\0" * 65536
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and socks:
            for c in list(socks):
                try:
                    c.send(filler)
                except (ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except OSError:
                    socks.remove(c)
                    c.close()
            peak = max(peak, rss_kib(pid))
        for c in socks:
            c.close()
        self.assertEqual(socks, [], "the master closed every flooding connection")
        self.assertLess(peak, budget, f"master RSS peaked at {peak} KiB")
        declared = 16 + 127 * 1024 * 1024
        wait_for(lambda: len(self.master_lines(r"closed: it sent more than 64 KiB before authenticating "
                                               rf"\(a D-Bus message of {declared} bytes at byte \d+\)")) == 16,
                 10, "one line per flooding connection, refusing the declared message")
        bid = s.submit("b")
        self.assertEqual(s.wait_build(bid), (bid, "success"))

    def test_small_messages_past_64_kib_before_authentication_are_cut_off(self):
        # Calls the master answers (AccessDenied), each declaring no more
        # than it sends: the cap on the bytes, not a declaration, ends them.
        self.start(master_config(self.port, master_lines="auth_timeout = 20"))
        with tls_connect(self.port) as c:
            c.sendall(b"\0AUTH ANONYMOUS 74657374\r\n")
            self.assertTrue(c.recv(1024).startswith(b"OK "))
            c.sendall(b"BEGIN\r\n")
            c.settimeout(1)
            try:
                for serial in range(1, 41):  # 168 KiB
                    c.sendall(small_call(serial, b"\0" * 4096))
            except OSError:
                pass
            # The master closes the connection: whatever answers it wrote
            # before, then the end (not a timeout).
            c.settimeout(10)
            try:
                while c.recv(65536):
                    pass
            except (ConnectionResetError, ssl.SSLError):
                pass
        lines = wait_for(lambda: self.master_lines(r"closed: it sent more than 64 KiB before authenticating$"), 10,
                         "the master to cut the connection off at 64 KiB")
        self.assertEqual(len(lines), 1, lines)

    def test_the_handshake_runs_only_inside_tls(self):
        self.start(master_config(self.port))
        # D-Bus in clear gets no answer: the master expects a ClientHello.
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as c:
            c.sendall(b"\0AUTH ANONYMOUS 74657374\r\n")
            try:
                self.assertEqual(c.recv(1024), b"")
            except ConnectionResetError:
                pass
        wait_for(lambda: self.master_lines(r"connection tcp#\d+ from 127\.0\.0\.1:\d+ closed: TLS handshake failed"),
                 10, "the master to log the failed handshake")
        # Inside TLS the usual gate applies.
        r = subprocess.run([CLIENT, f"127.0.0.1:{self.port}", "call", "org.buildyard.WorkerLink1", "Detach"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout.split("\n")[0], "org.buildyard.Error.AccessDenied", r.stderr)


if __name__ == "__main__":
    unittest.main()
