"""What a 避難者カード's QR code holds, and the keys that sign and seal it.

**Which key, and why a municipality key.** The card must verify at *another* shelter of the same
municipality, often before either laptop ever synced (the network is down; that is why the person
carries a card). A laptop's own device key would not do: another laptop learns its public key only
through the hub, i.e. after a sync. So the hub issues each municipality one random secret (the
*card key*) and hands it to every laptop at enrolment, boxed to the laptop's device key
(``sync.client.enroll``; ``hub_card_key`` in ``sync/hub/store.py``). Every enrolled laptop of the
municipality can then sign a card and check any other's card offline, from the first minute.
Both halves are derived from that one secret:

- the *signature* is HMAC-SHA256 (truncated to 128 bits) over the card's fields: every holder of
  the secret can both make and check it, which is exactly the trust we have (any enrolled laptop
  may print cards); an Ed25519 pair derived from the same secret would give nothing more, and a
  shorter tag keeps the QR code small enough for a 62 mm label;
- the *sealed* basic four items (name, reading, birth date, sex) are a NaCl SecretBox, so the
  QR carries no readable personal data, yet the receiving shelter can prefill its intake.

A laptop that was never enrolled makes a ``local`` key on first use: its cards verify on that
laptop only (and keep verifying there after it enrols; the municipality key then signs new cards).
A stolen laptop can forge cards of its municipality — as it could forge registrations; the hub's
revocation and a new key at the next enrolment are the answer, not this module.

QR text (all ASCII, so a USB scanner types it as is):
``ANPI1:<key_id>:<evacuee_id>:<shelter_code>:<sealed>:<tag>``, ``shelter_code`` percent-encoded,
``sealed`` and ``tag`` base64url. A 閲覧制限 person's card carries neither shelter nor sealed items.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote

from sqlmodel import Session, select

from app.services.errors import InvalidInput
from sync.models import CardKey

PREFIX = "ANPI1"
TAG_BYTES = 16
#: longest QR text we accept from a scanner (a real card is ~250 characters)
MAX_TEXT = 1200

REFUSED_FORMAT_JA = "避難者カードのQRコードではありません"
REFUSED_FORGED_JA = "このカードは偽造または改ざんされています。受け付けできません"
REFUSED_UNKNOWN_JA = ("このカードはこの端末では確かめられません（別の市町村のカードか、"
                      "市町村に登録していない端末で印刷されたカードです）。受付で登録してください")


class CardRefused(InvalidInput):
    """A QR text that is not a genuine card of a key this laptop holds."""

    def __init__(self, message: str, message_ja: str, reason: str) -> None:
        super().__init__(message, message_ja, "card")
        self.reason = reason  # format | unknown_key | forged


@dataclass(frozen=True)
class CardText:
    """What a genuine card says."""

    key_id: str
    evacuee_id: str
    shelter_code: str
    basic: dict[str, str] | None  # the unsealed basic four items, when the card carries them
    shelter_name: str = ""  # sealed beside them: a shelter that never synced cannot name the code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id_of(secret: bytes) -> str:
    """A short public fingerprint of a card key (names the key on the card; reveals nothing)."""
    return hashlib.sha256(b"anpi-card-key-id:" + secret).hexdigest()[:8]


def _derive(secret: bytes, purpose: str) -> bytes:
    return hashlib.blake2b(secret, key=b"anpi-card", person=purpose.encode("ascii")[:16].ljust(16, b"\0"),
                           digest_size=32).digest()


def _message(key_id: str, evacuee_id: str, shelter: str, sealed: str) -> bytes:
    return "\n".join((PREFIX, key_id, evacuee_id, shelter, sealed)).encode("utf-8")


def _tag(secret: bytes, msg: bytes) -> str:
    return _b64(hmac.new(_derive(secret, "sign"), msg, hashlib.sha256).digest()[:TAG_BYTES])


# --- keys -------------------------------------------------------------------------------------------

def store_key(session: Session, secret: bytes, scope: str) -> CardKey:
    """Keep a card key (idempotent): the municipality's from the hub, or a local one."""
    kid = key_id_of(secret)
    row = session.get(CardKey, kid)
    if row is None:
        row = CardKey(key_id=kid, scope=scope, secret=base64.b64encode(secret).decode("ascii"),
                      created_at=datetime.now(timezone.utc))
        session.add(row)
        session.flush()
    return row


def _secret(row: CardKey) -> bytes:
    return base64.b64decode(row.secret)


def issuing_key(session: Session) -> CardKey:
    """The key new cards are signed with: the municipality's (newest) when enrolled, else a local
    key made on first use (module notes)."""
    rows = list(session.exec(select(CardKey).order_by(CardKey.created_at.desc())))  # type: ignore[attr-defined]
    for scope in ("municipality", "local"):
        for r in rows:
            if r.scope == scope:
                return r
    return store_key(session, secrets.token_bytes(32), "local")


def has_municipality_key(session: Session) -> bool:
    return session.exec(select(CardKey).where(CardKey.scope == "municipality")).first() is not None


# --- the QR text ---------------------------------------------------------------------------------------

def encode(key: CardKey, evacuee_id: str, shelter_code: str, basic: dict[str, str] | None) -> str:
    """The QR text of one card (``basic`` sealed when given, with the shelter's name; module notes)."""
    from nacl.secret import SecretBox

    secret = _secret(key)
    sealed = ""
    if basic:
        plain = json.dumps(basic, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        sealed = _b64(bytes(SecretBox(_derive(secret, "seal")).encrypt(plain)))
    shelter = quote(shelter_code or "", safe="")
    return ":".join((PREFIX, key.key_id, evacuee_id, shelter, sealed,
                     _tag(secret, _message(key.key_id, evacuee_id, shelter, sealed))))


def verify(session: Session, text: str) -> CardText:
    """The card's contents when `text` is a genuine card of a key this laptop holds; otherwise
    CardRefused (not a card / a key we do not hold / forged or altered)."""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    text = (text or "").strip()
    parts = text.split(":")
    if len(text) > MAX_TEXT or len(parts) != 6 or parts[0] != PREFIX or not parts[2]:
        raise CardRefused("not an Anpi card QR text", REFUSED_FORMAT_JA, "format")
    _, kid, evacuee_id, shelter, sealed, tag = parts
    row = session.get(CardKey, kid)
    if row is None:
        raise CardRefused(f"card signed with key {kid}, which this laptop does not hold", REFUSED_UNKNOWN_JA,
                          "unknown_key")
    secret = _secret(row)
    if not hmac.compare_digest(_tag(secret, _message(kid, evacuee_id, shelter, sealed)), tag):
        raise CardRefused("card signature does not match: forged or altered", REFUSED_FORGED_JA, "forged")
    basic = None
    if sealed:
        try:
            basic = json.loads(SecretBox(_derive(secret, "seal")).decrypt(_unb64(sealed)).decode("utf-8"))
        except (CryptoError, ValueError):
            raise CardRefused("sealed items cannot be opened", REFUSED_FORGED_JA, "forged") from None
    name = str(basic.get("shelter_name") or "") if isinstance(basic, dict) else ""
    return CardText(kid, evacuee_id, unquote(shelter), _basic(basic), name)


def _basic(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    return {k: str(value.get(k) or "") for k in ("name", "name_kana", "birth_date", "sex")}
