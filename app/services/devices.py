"""Which tablets and laptops may use `anpi serve --lan` (issue 15): one-time pairing codes and
paired devices.

How a device joins: an administrator at the laptop asks for a code (6 digits, valid
`CODE_TTL_SECONDS`, good for one device); the person at the tablet types it on /pair with a name
for the device; the tablet receives a random device token (cookie) whose SHA-256 is stored here.
Every request from the LAN is checked against this table, so a revocation holds from the next
request. Why a code that dies after `MAX_CODE_FAILURES` wrong tries, counted over every client: on
shelter Wi-Fi a guesser can change address at will, so a per-address count would not stop one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session, select

from app.ids import utcnow
from app.models import PairedDevice
from app.services.errors import InvalidInput, NotFound

CODE_TTL_SECONDS = 600
MAX_CODE_FAILURES = 5
NAME_MAX = 40


#: the peer addresses of the laptop's own browser: on the laptop, a connection to any loopback
#: address leaves from 127.0.0.1 (or ::1) unless a program binds another one on purpose
LAPTOP_PEERS = frozenset({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")})


def is_laptop(host: str | None) -> bool:
    """True when the socket's peer is the laptop's own browser (127.0.0.1, ::1, ::ffff:127.0.0.1).
    Only the peer address counts: no header (X-Forwarded-For …) is ever believed. Another loopback
    address (127.0.0.2 …) is treated like a device on the LAN, which is also how tests and
    bench/lan_bench.py stand tablets on one machine without sending traffic anywhere else."""
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr) in LAPTOP_PEERS


@dataclass(frozen=True)
class OpenCode:
    code: str
    expires_at: float  # time.monotonic()
    seconds_left: int


class PairingCodes:
    """At most one open code at a time, in memory (a restart closes it), thread-safe."""

    def __init__(self, ttl_seconds: float = CODE_TTL_SECONDS, max_failures: int = MAX_CODE_FAILURES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds, self.max_failures, self._clock = ttl_seconds, max_failures, clock
        self._lock = threading.Lock()
        self._code: str | None = None
        self._until = 0.0
        self._failures = 0

    def issue(self) -> OpenCode:
        """A new code; the previous one stops working."""
        with self._lock:
            self._code = f"{secrets.randbelow(10**6):06d}"
            self._until = self._clock() + self.ttl_seconds
            self._failures = 0
            return OpenCode(self._code, self._until, int(self.ttl_seconds))

    def current(self) -> OpenCode | None:
        with self._lock:
            if self._code is None or self._clock() >= self._until:
                return None
            return OpenCode(self._code, self._until, int(self._until - self._clock()))

    def consume(self, typed: str) -> bool:
        """True once for the right, unexpired code; wrong tries count towards voiding it."""
        typed = "".join(ch for ch in typed if ch.isdigit())
        with self._lock:
            if self._code is None or self._clock() >= self._until:
                self._code = None
                return False
            if secrets.compare_digest(typed.encode(), self._code.encode()):
                self._code = None
                return True
            self._failures += 1
            if self._failures >= self.max_failures:
                self._code = None
            return False

    def close(self) -> None:
        with self._lock:
            self._code = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("device name missing", "端末の名前を入力してください（例：受付タブレット1）", "name")
    if len(name) > NAME_MAX:
        raise InvalidInput("device name too long", f"端末の名前は{NAME_MAX}文字以内にしてください", "name")
    return name


def pair(session: Session, name: str, client: str) -> tuple[PairedDevice, str]:
    """A newly paired device and its token (shown to nobody: it goes into the device's cookie).
    The caller has consumed a pairing code and commits."""
    token = secrets.token_urlsafe(32)
    device = PairedDevice(name=clean_name(name), token_hash=_hash(token), client=client)
    session.add(device)
    session.flush()
    return device, token


def device_for_token(session: Session, token: str | None) -> PairedDevice | None:
    """The paired, not revoked device holding this token, or None."""
    if not token or len(token) > 200:
        return None
    dev = session.exec(select(PairedDevice).where(PairedDevice.token_hash == _hash(token))).first()
    return dev if dev is not None and dev.revoked_at is None else None


def list_devices(session: Session) -> list[PairedDevice]:
    """Paired devices, newest first; revoked ones after the active ones."""
    rows = list(session.exec(select(PairedDevice).order_by(PairedDevice.paired_at.desc())))  # type: ignore[attr-defined]
    return sorted(rows, key=lambda d: d.revoked_at is not None)


def revoke(session: Session, device_id: str, by: str) -> PairedDevice:
    """The device may no longer connect (from its next request). The caller commits."""
    dev = session.get(PairedDevice, device_id)
    if dev is None:
        raise NotFound(f"no device {device_id}", "その端末は見つかりません")
    if dev.revoked_at is None:
        dev.revoked_at = utcnow()
        dev.revoked_by = by
        session.add(dev)
        session.flush()
    return dev
