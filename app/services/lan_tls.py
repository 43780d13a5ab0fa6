"""The laptop's own TLS certificate for `anpi serve --lan` (issue 15).

Why self-signed and made here: a shelter has no internet and no domain name, so no public
authority can vouch for the laptop. The laptop makes one certificate the first time it serves its
LAN and keeps it in the encrypted database (`LanIdentity`); tablets check its SHA-256 fingerprint
against the one on the laptop's screen (text and QR code) once, when they accept it. The private
key leaves the database only encrypted with a random password, for the TLS listener to load.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
import socket
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlmodel import Session

from app.models import LanIdentity

VALID_DAYS = 825  # long enough for a long evacuation, the most browsers accept for one certificate


@dataclass(frozen=True)
class TlsFiles:
    """What the TLS listener loads: the certificate, the encrypted key and its password."""

    cert_file: Path
    key_file: Path
    key_password: str
    fingerprint: str


def lan_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (what tablets type or scan), best guess first."""
    found: list[str] = []
    for probe in ("192.168.254.254", "10.254.254.254", "172.16.254.254"):  # private ranges a hotspot uses
        try:  # the address a packet to there would leave from; no packet is sent
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                found.append(s.getsockname()[0])
        except OSError:
            pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    except OSError:
        pass
    out: list[str] = []
    for a in found:
        if a not in out and not ipaddress.ip_address(a).is_loopback:
            out.append(a)
    return out


def fingerprint_of(cert_pem: str) -> str:
    """SHA-256 of the certificate, as browsers show it (AB:CD:…)."""
    der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def spki_pin(cert_pem: str) -> str:
    """base64 SHA-256 of the public key: what Chromium's --ignore-certificate-errors-spki-list pins."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _names(extra_hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    host = socket.gethostname()
    if host and host != "localhost":
        names += [x509.DNSName(host), x509.DNSName(f"{host}.local")]
    ips = ["127.0.0.1", "::1", *lan_addresses(), *extra_hosts]
    seen: set[str] = set()
    for ip in ips:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if str(addr) not in seen and not addr.is_unspecified:
            seen.add(str(addr))
            names.append(x509.IPAddress(addr))
    return names


def make_certificate(extra_hosts: list[str] | None = None) -> LanIdentity:
    """A new self-signed certificate (EC P-256: a fast handshake on a small laptop)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Anpi shelter laptop {socket.gethostname()}"[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Anpi")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(_names(extra_hosts or [])), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    password = secrets.token_urlsafe(32)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(password.encode())).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return LanIdentity(id=1, cert_pem=cert_pem, key_pem=key_pem, key_password=password,
                       fingerprint=fingerprint_of(cert_pem))


def identity(session: Session, extra_hosts: list[str] | None = None) -> LanIdentity:
    """The laptop's certificate, made (and stored) the first time. The caller commits."""
    row = session.get(LanIdentity, 1)
    if row is None:
        row = make_certificate(extra_hosts)
        session.add(row)
        session.flush()
    return row


def write_tls_files(row: LanIdentity, folder: Path | None = None) -> TlsFiles:
    """The certificate and the (still encrypted) key as files for the listener, readable by us only."""
    folder = Path(folder or tempfile.mkdtemp(prefix="anpi-tls-"))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    for path, text in ((cert_file, row.cert_pem), (key_file, row.key_pem)):
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(text, encoding="ascii")
    return TlsFiles(cert_file, key_file, row.key_password, row.fingerprint)


@dataclass(frozen=True)
class LanInfo:
    """What the laptop's screen shows about its LAN listener: the addresses tablets open and the
    certificate fingerprint they check."""

    fingerprint: str
    urls: tuple[str, ...]

    @property
    def pair_url(self) -> str:
        return (self.urls[0] if self.urls else "") + "/pair"


def lan_info(fingerprint: str, host: str, port: int) -> LanInfo:
    """The https:// addresses of this laptop on its LAN (the bound address, or every LAN address
    when bound to all)."""
    hosts = lan_addresses() if host in ("0.0.0.0", "::", "") else [host]
    return LanInfo(fingerprint, tuple(f"https://{h}:{port}" for h in hosts))
