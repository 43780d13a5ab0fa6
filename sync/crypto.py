"""Keys, request signatures and boxes.

- Every device and the hub hold an Ed25519 signing key; the hub also holds a Curve25519 box
  key.  Keys are stored as base64 text in the respective databases.
- A request is signed over ``method, path, sha256(body), timestamp, nonce, device id`` so a
  captured request cannot be replayed to another path, with another body, or later.
- USB bundles are ``Box(device_curve25519_secret, hub_box_public)``: the hub can open them
  *and* knows which device sealed them, and the laptop can open its own bundle again to
  verify what it wrote (a SealedBox could not be read back).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import Box, PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from typing import Any, Mapping

from sync.canonical import canonical_bytes
from sync.errors import AuthError

HDR_DEVICE = "X-Anpi-Device"
HDR_TIMESTAMP = "X-Anpi-Timestamp"
HDR_NONCE = "X-Anpi-Nonce"
HDR_SIGNATURE = "X-Anpi-Signature"

#: how far a request timestamp may be from the hub clock (seconds)
MAX_CLOCK_SKEW = 300


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def new_signing_key() -> SigningKey:
    return SigningKey.generate()


def signing_key_from_b64(text: str) -> SigningKey:
    return SigningKey(b64d(text))


def signing_key_to_b64(key: SigningKey) -> str:
    return b64e(bytes(key))


def verify_key_b64(key: SigningKey) -> str:
    return b64e(bytes(key.verify_key))


def verify_key_from_b64(text: str) -> VerifyKey:
    return VerifyKey(b64d(text))


def new_box_key() -> PrivateKey:
    return PrivateKey.generate()


def box_key_from_b64(text: str) -> PrivateKey:
    return PrivateKey(b64d(text))


def public_key_from_b64(text: str) -> PublicKey:
    return PublicKey(b64d(text))


def device_box(device_key: SigningKey, hub_box_public_b64: str) -> Box:
    """Box used by a device to seal (and re-open) its bundles for one hub."""
    return Box(device_key.to_curve25519_private_key(), public_key_from_b64(hub_box_public_b64))


def hub_box(hub_box_key: PrivateKey, device_verify_b64: str) -> Box:
    """Box used by the hub to open a bundle from a device it knows."""
    return Box(hub_box_key, verify_key_from_b64(device_verify_b64).to_curve25519_public_key())


def sign_detached(key: SigningKey, message: bytes) -> str:
    return b64e(key.sign(message).signature)


def verify_detached(verify_b64: str, message: bytes, signature_b64: str) -> bool:
    try:
        verify_key_from_b64(verify_b64).verify(message, b64d(signature_b64))
        return True
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False


def request_message(method: str, path: str, body: bytes, timestamp: str, nonce: str, device_id: str) -> bytes:
    """The exact bytes a request signature covers (path includes the query string)."""
    return "\n".join(
        ["ANPI-REQ-1", method.upper(), path, hashlib.sha256(body).hexdigest(), timestamp, nonce, device_id]
    ).encode("utf-8")


@dataclass(frozen=True)
class SignedHeaders:
    device_id: str
    timestamp: str
    nonce: str
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {HDR_DEVICE: self.device_id, HDR_TIMESTAMP: self.timestamp,
                HDR_NONCE: self.nonce, HDR_SIGNATURE: self.signature}


def sign_request(key: SigningKey, device_id: str, method: str, path: str, body: bytes, now: float) -> SignedHeaders:
    ts = str(int(now))
    nonce = secrets.token_hex(16)
    sig = sign_detached(key, request_message(method, path, body, ts, nonce, device_id))
    return SignedHeaders(device_id, ts, nonce, sig)


def parse_signed_headers(headers: "dict[str, str] | object") -> SignedHeaders:
    """Extract the four signature headers or raise ``AuthError('unsigned')``."""
    get = headers.get  # type: ignore[attr-defined]
    values = [get(h) for h in (HDR_DEVICE, HDR_TIMESTAMP, HDR_NONCE, HDR_SIGNATURE)]
    if not all(values):
        raise AuthError("unsigned", "request carries no device signature", 401)
    device_id, ts, nonce, sig = (str(v) for v in values)
    if not ts.lstrip("-").isdigit() or len(nonce) < 16 or len(nonce) > 64:
        raise AuthError("malformed_signature", "bad timestamp or nonce header", 401)
    return SignedHeaders(device_id, ts, nonce, sig)


def new_enrolment_code() -> str:
    """80 random bits as 4 groups of Crockford base32 (easy to read aloud over a phone)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def normalise_code(code: str) -> str:
    """Staff type codes by hand: ignore case, spaces and dashes; O→0, I/L→1."""
    c = code.upper().replace("-", "").replace(" ", "").replace("O", "0").replace("I", "1").replace("L", "1")
    return "-".join(c[i:i + 4] for i in range(0, len(c), 4))


def code_id(code: str) -> str:
    """Public lookup id of an enrolment code (sent over the wire; reveals nothing of the key)."""
    return hashlib.sha256(b"anpi-code-id:" + normalise_code(code).encode("ascii", "replace")).hexdigest()


def code_key(code: str) -> bytes:
    """Secret MAC key derived from the code: proves both sides know it without sending it."""
    return hashlib.sha256(b"anpi-code-key:" + normalise_code(code).encode("ascii", "replace")).digest()


def mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def mac_ok(key: bytes, message: bytes, tag: str) -> bool:
    return hmac.compare_digest(mac(key, message), str(tag))


def enrolment_message(code_id: str, device_id: str, public_key: str, shelter_name: str | None) -> bytes:
    """What a laptop signs (with its new key) and MACs (with the code key) to enrol."""
    return canonical_bytes({"purpose": "anpi-enroll-1", "code_id": code_id, "device_id": device_id,
                            "public_key": public_key, "shelter_name": shelter_name})


def hub_urls_message(urls: list[str], device_id: str) -> bytes:
    """What the hub MACs with the code key over its list of hub URLs (primary and standbys), so a
    man in the middle cannot point a laptop at a hub of his own.  A separate MAC beside the reply's:
    laptops of an older version verify the reply as before and ignore the list."""
    return canonical_bytes({"purpose": "anpi-hub-urls-1", "device_id": device_id, "hub_urls": list(urls)})


def enrolment_reply_message(reply: Mapping[str, Any], device_id: str) -> bytes:
    """What the hub MACs with the code key so the laptop can trust the hub keys it receives."""
    return canonical_bytes({"purpose": "anpi-enroll-reply-1", "device_id": device_id,
                            **{k: reply[k] for k in ("hub_id", "sign_public_key", "box_public_key", "device_name")}})
