"""TLS for the mock server: certificates made on the spot and the server's SSLContext.

`mock-server --tls` makes a throw-away CA and a server certificate for localhost/127.0.0.1/::1
(`self_signed`), prints where the CA certificate is (clients pass it as `--ca-cert`) and serves
https. `--tls-cert/--tls-key` serve with given files; `--tls-client-ca FILE` demands a client
certificate signed by that CA (mTLS). Tests make their certificates with the same functions, so
no certificate is ever committed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backends.errors import BackendError

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Issued:
    cert: Path  # PEM certificate
    key: Path  # PEM private key (unencrypted)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    folder.mkdir(parents=True, exist_ok=True)
    c, k = folder / f"{stem}.crt", folder / f"{stem}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    k.chmod(0o600)
    return Issued(c, k)


def make_ca(folder: Path, cn: str = "inferprof test CA") -> Issued:
    """A self-signed CA certificate valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _write(folder, "ca", cert, key)


def issue(ca: Issued, folder: Path, stem: str, names: tuple[str, ...] = LOCAL_NAMES,
          client: bool = False) -> Issued:
    """A leaf certificate signed by `ca`: for a server (`names` as SANs) or a client."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    b = (x509.CertificateBuilder().subject_name(_name(stem)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _write(folder, stem, b.sign(ca_key, hashes.SHA256()), key)


def self_signed(folder: Path | None = None) -> tuple[Issued, Issued]:
    """(CA, server certificate for the local names) in `folder` (default: a new temp folder)."""
    folder = folder or Path(tempfile.mkdtemp(prefix="inferprof-mock-tls-"))
    ca = make_ca(folder)
    return ca, issue(ca, folder, "server")


def server_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """The mock's TLS context; with `client_ca` it requires a client certificate signed by it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key or None)
        if client_ca:
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (ssl.SSLError, OSError) as e:
        raise BackendError(f"mock TLS setup failed: {e}") from None
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def context_from_args(a) -> ssl.SSLContext | None:
    """The server context the mock's TLS flags ask for, or None for plain http."""
    if a.tls_cert or a.tls_key:
        if not (a.tls_cert and a.tls_key):
            raise BackendError("--tls-cert and --tls-key go together")
        return server_context(a.tls_cert, a.tls_key, a.tls_client_ca or "")
    if a.tls:
        ca, server = self_signed()
        print(f"TLS certificate: {server.cert} (trust it with --ca-cert {ca.cert})", file=sys.stderr,
              flush=True)
        return server_context(str(server.cert), str(server.key), a.tls_client_ca or "")
    if a.tls_client_ca:
        raise BackendError("--tls-client-ca needs --tls or --tls-cert/--tls-key")
    return None
