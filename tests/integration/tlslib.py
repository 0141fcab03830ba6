"""Certificates, fingerprints and relays for the tests of the remote
workers' TLS: real X.509 from python3-cryptography, real TLS from Python's
ssl module, bytes relayed on 127.0.0.1."""

import datetime
import hashlib
import os
import select
import socket
import ssl
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def fingerprint_of_pem(path):
    """'sha256:' and the hex SHA-256 of the certificate's DER form."""
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory, stem, key, cert):
    key_path = os.path.join(directory, f"{stem}.key")
    cert_path = os.path.join(directory, f"{stem}.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class CA:
    """A certificate authority that signs leaf certificates for tests."""

    def __init__(self, directory, cn="Buildyard test CA"):
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.path, _ = _write(directory, "ca", self.key, self.cert)

    def issue(self, stem, host, days=(-1, 30), client=False):
        """A leaf for `host` (DNS name or IP) valid from now+days[0] to now+days[1]."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        try:
            import ipaddress
            san = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        usage = x509.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.ExtendedKeyUsageOID.SERVER_AUTH
        cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now + datetime.timedelta(days=days[0]))
                .not_valid_after(now + datetime.timedelta(days=days[1]))
                .add_extension(x509.SubjectAlternativeName([san]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return _write(self.dir, stem, key, cert)


def self_signed(directory, stem, cn="relay"):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return _write(directory, stem, key, cert)


def _shut(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def _pump(a, b, record=None):
    """Copies both ways until either side ends; `record` gets every byte."""
    try:
        while True:
            ready, _, _ = select.select([a, b], [], [], 0.5)
            for s in ready:
                data = s.recv(65536)
                if not data:
                    raise OSError("eof")
                if record is not None:
                    record.append(data)
                (b if s is a else a).sendall(data)
                # TLS sockets may hold decrypted bytes select() cannot see.
                while isinstance(s, ssl.SSLSocket) and s.pending():
                    more = s.recv(65536)
                    if record is not None:
                        record.append(more)
                    (b if s is a else a).sendall(more)
    except (OSError, ssl.SSLError):
        _shut(a, b)


class Relay:
    """A TCP relay on 127.0.0.1 to `target_port` that keeps every byte it
    forwards, in both directions: what a sniffer on the path would see.
    With `tls` = (certificate, key) it terminates TLS with its own
    certificate and opens its own TLS connection to the target instead:
    a man in the middle that a worker trusts by mistake."""

    def __init__(self, target_port, tls=None):
        self.target = target_port
        self.tls = tls
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.chunks = []
        self.accepted = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def captured(self):
        return b"".join(list(self.chunks))

    def _accept(self):
        while not self.closed:
            try:
                a, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(a,), daemon=True).start()

    def _serve(self, a):
        try:
            b = socket.create_connection(("127.0.0.1", self.target))
            if self.tls:
                server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                server.load_cert_chain(*self.tls)
                a = server.wrap_socket(a, server_side=True)
                client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                client.check_hostname = False
                client.verify_mode = ssl.CERT_NONE
                b = client.wrap_socket(b)
        except (OSError, ssl.SSLError):
            _shut(a)
            return
        _pump(a, b, self.chunks)

    def close(self):
        self.closed = True
        self.listener.close()


def tls_client_context(maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def tls_connect(port, timeout=10):
    """A TLS 1.3 connection to the master on 127.0.0.1:`port`, unverified."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return tls_client_context().wrap_socket(raw)
