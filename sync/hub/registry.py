"""Registry backups held at the data center (自治体クラウド), encrypted at rest.

A municipality's IT imports a registry snapshot at the hub (``anpi hub registry import``); the
face parses and checks it exactly as a shelter import does (``app.services.registry``) and hands
this module plain data: the file's bytes and the parsed records.  Both are sealed with the
*hub data key* (PyNaCl ``SecretBox``, XSalsa20-Poly1305) before they touch the database; the
sealed plaintext starts with a header naming the municipality, snapshot and purpose, checked on
opening, so a ciphertext moved to another municipality's row (or swapped file/records) is refused.

Key handling: the 32-byte key comes from env ``ANPI_HUB_DATA_KEY`` (base64) or from the file
named by ``ANPI_HUB_DATA_KEY_FILE`` (base64 text, mode 0600, created by
``anpi hub data-key create --out FILE``).  It never enters the database; each snapshot records
only the key's fingerprint (``key_id``), so a wrong key is named as such instead of failing
obscurely.  Lose the key and the backups are unreadable: keep a copy offline.

A laptop fetches its municipality's newest snapshot over the signed device channel
(:func:`device_package`): a manifest signed by the hub's Ed25519 key (SHA-256, size, as-of date,
how to import it) and the file boxed to that device's key (``Box``), so only that laptop can
read it even over plain HTTP.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import weakref
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from sync.settings import SyncSettings
from sync import crypto
from sync.canonical import canonical_bytes
from sync.errors import DataKeyError, RegistryError
from sync.hub import audit
from sync.hub.store import (
    HubIdentity, bulk_insert, hub_cross_link, hub_lock, hub_municipality, hub_person_link, hub_registry_snapshot,
    hub_restricted, mark_withheld, new_row_id, resolve_municipality, set_tenant, utcnow,
)

DATA_KEY_ENV = "ANPI_HUB_DATA_KEY"
DATA_KEY_FILE_ENV = "ANPI_HUB_DATA_KEY_FILE"

#: order of the fields of each parsed record (values as the shelter import stored them)
RECORD_FIELDS = ("resident_id", "household_id", "family_name", "given_name", "family_name_kana",
                 "given_name_kana", "alpha_name", "birth_date", "sex", "address", "restricted", "postal_code",
                 "relationship", "birth_raw")


# ---- the data key ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataKey:
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != SecretBox.KEY_SIZE:
            raise DataKeyError(f"the hub data key must be {SecretBox.KEY_SIZE} bytes (base64), got {len(self.key)}")

    @property
    def key_id(self) -> str:
        """Fingerprint stored beside each sealed snapshot (reveals nothing of the key)."""
        return hashlib.sha256(b"anpi-hub-data-key-id:" + self.key).hexdigest()[:16]

    @classmethod
    def generate(cls) -> "DataKey":
        return cls(os.urandom(SecretBox.KEY_SIZE))

    @classmethod
    def from_text(cls, text: str, where: str = DATA_KEY_ENV) -> "DataKey":
        try:
            raw = base64.b64decode(text.strip().encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise DataKeyError(f"{where} is not base64: {exc}") from None
        return cls(raw)

    def to_text(self) -> str:
        return base64.b64encode(self.key).decode("ascii")

    def seal(self, context: Mapping[str, Any], data: bytes) -> bytes:
        header = canonical_bytes(dict(context))
        plain = len(header).to_bytes(4, "big") + header + zlib.compress(data, 6)
        return bytes(SecretBox(self.key).encrypt(plain))

    def open(self, context: Mapping[str, Any], blob: bytes, key_id: str | None = None) -> bytes:
        if key_id is not None and key_id != self.key_id:
            raise DataKeyError(f"sealed with hub data key {key_id}, but the configured key is {self.key_id}")
        try:
            plain = SecretBox(self.key).decrypt(bytes(blob))
        except CryptoError:
            raise DataKeyError("cannot open a sealed snapshot: wrong hub data key or damaged data") from None
        n = int.from_bytes(plain[:4], "big")
        if canonical_bytes(dict(context)) != plain[4:4 + n]:
            raise RegistryError("sealed data belongs to another snapshot or municipality; refused")
        return zlib.decompress(plain[4 + n:])

    def mac(self, text: str) -> str:
        """Keyed hash for 閲覧制限 resident ids: comparable at the hub, never stored in clear."""
        sub = hashlib.sha256(b"anpi-restricted-mac:" + self.key).digest()
        return hmac.new(sub, text.encode("utf-8"), hashlib.sha256).hexdigest()


def load_data_key(environ: Mapping[str, str] | None = None, *, required: bool = False) -> DataKey | None:
    """The configured hub data key (env ``ANPI_HUB_DATA_KEY``, else ``ANPI_HUB_DATA_KEY_FILE``)."""
    st = SyncSettings.from_env(environ)
    text, path = st.hub_data_key, st.hub_data_key_file
    if text:
        return DataKey.from_text(text)
    if path:
        try:
            return DataKey.from_text(Path(path).read_text(encoding="ascii"), where=path)
        except OSError as exc:
            raise DataKeyError(f"cannot read hub data key file {path}: {exc.strerror or exc}") from None
    if required:
        raise DataKeyError(f"no hub data key: set {DATA_KEY_ENV} (base64) or {DATA_KEY_FILE_ENV}; "
                           "create one with `anpi hub data-key create --out FILE`")
    return None


def create_key_file(path: str | Path) -> DataKey:
    """Write a new random key (mode 0600); never overwrites an existing file."""
    key = DataKey.generate()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.to_text() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


_attached: "weakref.WeakKeyDictionary[Engine, DataKey]" = weakref.WeakKeyDictionary()


def attach_data_key(engine: Engine, key: DataKey | None) -> None:
    """Tell code that only sees a connection (apply, cross-town matching) which key this hub uses."""
    if key is not None:
        _attached[engine] = key


def data_key_of(engine: Engine) -> DataKey | None:
    return _attached.get(engine) or load_data_key()


# ---- storing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SnapshotInfo:
    municipality_code: str
    snapshot_id: str
    as_of: str
    source_file: str
    sha256: str
    size: int
    row_count: int
    encoding: str
    profile: str
    options: dict[str, Any]
    key_id: str
    imported_at: datetime
    imported_by: str

    def as_dict(self) -> dict[str, Any]:
        return {"municipality_code": self.municipality_code, "snapshot_id": self.snapshot_id, "as_of": self.as_of,
                "source_file": self.source_file, "sha256": self.sha256, "size": self.size,
                "row_count": self.row_count, "encoding": self.encoding, "profile": self.profile,
                "imported_at": self.imported_at.isoformat(timespec="seconds"), "imported_by": self.imported_by}


def _info(r: Mapping[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(r["municipality_code"], r["snapshot_id"], r["as_of"], r["source_file"], r["sha256"],
                        int(r["size"]), int(r["row_count"]), r["encoding"], r["profile"], json.loads(r["options"]),
                        r["key_id"], r["imported_at"], r["imported_by"])


_INFO_COLS = [c for c in hub_registry_snapshot.c if c.name not in ("file_ct", "records_ct")]


def _file_context(m: str, sid: str, sha: str) -> dict[str, str]:
    return {"purpose": "anpi-hub-registry-file-1", "municipality": m, "snapshot_id": sid, "sha256": sha}


def _records_context(m: str, sid: str, sha: str) -> dict[str, str]:
    return {"purpose": "anpi-hub-registry-records-1", "municipality": m, "snapshot_id": sid, "sha256": sha}


def store_snapshot(engine: Engine, key: DataKey, municipality: str, *, data: bytes, source_file: str, sha256: str,
                   as_of: str, encoding: str, profile: str, options: Mapping[str, Any],
                   records: Sequence[Sequence[Any]], gaiji: Mapping[str, str], imported_by: str) -> SnapshotInfo:
    """Seal and store one parsed snapshot for one municipality (one transaction).

    ``records`` are tuples in :data:`RECORD_FIELDS` order, as the shelter import parsed them.
    Refuses a file this municipality already stored (same SHA-256).
    """
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RegistryError(f"{source_file}: SHA-256 of the bytes does not match the parsed file; refused")
    if not records:
        raise RegistryError(f"{source_file}: no resident rows")
    now = utcnow()
    sid = new_row_id()
    body = json.dumps({"v": 1, "fields": list(RECORD_FIELDS), "gaiji": dict(gaiji),
                       "rows": [list(r) for r in records]}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    rid_i, res_i = RECORD_FIELDS.index("resident_id"), RECORD_FIELDS.index("restricted")
    with engine.begin() as conn:
        m = resolve_municipality(conn, municipality)
        hub_lock(conn, m)
        old = conn.execute(select(hub_registry_snapshot.c.snapshot_id, hub_registry_snapshot.c.as_of,
                                  hub_registry_snapshot.c.imported_at).where(
            hub_registry_snapshot.c.municipality_code == m, hub_registry_snapshot.c.sha256 == sha256)).first()
        if old is not None:
            raise RegistryError(f"{source_file} is already stored for {m} as snapshot {old[0]} (as of {old[1]}, "
                                f"imported {old[2]:%Y-%m-%d %H:%M}); nothing changed")
        conn.execute(hub_registry_snapshot.insert().values(
            municipality_code=m, snapshot_id=sid, as_of=as_of, source_file=source_file, sha256=sha256,
            size=len(data), row_count=len(records), encoding=encoding, profile=profile,
            options=json.dumps(dict(options), ensure_ascii=False, sort_keys=True), key_id=key.key_id,
            file_ct=key.seal(_file_context(m, sid, sha256), data),
            records_ct=key.seal(_records_context(m, sid, sha256), body), imported_at=now, imported_by=imported_by))
        macs = sorted({key.mac(f"{m}:{r[rid_i]}") for r in records if r[res_i]})
        bulk_insert(conn, hub_restricted, [dict(municipality_code=m, snapshot_id=sid, rid_mac=x) for x in macs])
        hh_i = RECORD_FIELDS.index("household_id")
        bad_hh = {r[hh_i] for r in records if r[res_i] and r[hh_i]}  # the household of a flagged person too
        family = {key.mac(f"{m}:{r[rid_i]}") for r in records if r[hh_i] and r[hh_i] in bad_hh}
        _rewithhold(conn, key, m, set(macs), set(macs) | family)
        audit.record(conn, m, actor=imported_by or "hub", action="registry.imported",
                     detail={"snapshot_id": sid, "source_file": source_file, "sha256": sha256, "as_of": as_of,
                             "rows": len(records), "key_id": key.key_id})
        row = conn.execute(select(*_INFO_COLS).where(hub_registry_snapshot.c.municipality_code == m,
                                                     hub_registry_snapshot.c.snapshot_id == sid)).mappings().one()
    return _info(row)


def _rewithhold(conn: Connection, key: DataKey, m: str, macs: set[str], withhold: set[str] | None = None) -> None:
    """A new snapshot may flag (閲覧制限) people already linked: withhold them — and the evacuees
    linked to anyone in a flagged person's registry household (``withhold``) — from now on; the
    other laptops are told to drop what they pulled (`sync.hub.apply.mark_withheld`)."""
    withhold = withhold if withhold is not None else macs
    if not macs:
        return
    links = conn.execute(select(hub_person_link.c.evacuee_id, hub_person_link.c.resident_id).where(
        hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None),
        (hub_person_link.c.resident_municipality.is_(None)) | (hub_person_link.c.resident_municipality == m))).all()
    mark_withheld(conn, m, [e for e, rid in links if key.mac(f"{m}:{rid}") in withhold])
    for host, eid, rid in conn.execute(select(hub_cross_link.c.host_code, hub_cross_link.c.evacuee_id,
                                              hub_cross_link.c.resident_id)
                                       .where(hub_cross_link.c.municipality_code == m)).all():
        if rid and key.mac(f"{m}:{rid}") in macs:
            conn.execute(update(hub_cross_link).where(
                hub_cross_link.c.municipality_code == m, hub_cross_link.c.host_code == host,
                hub_cross_link.c.evacuee_id == eid).values(restricted=True))


def restricted_macs(conn: Connection, m: str, snapshot_id: str) -> set[str]:
    return {r[0] for r in conn.execute(select(hub_restricted.c.rid_mac).where(
        hub_restricted.c.municipality_code == m, hub_restricted.c.snapshot_id == snapshot_id)).all()}


# ---- reading ------------------------------------------------------------------------------------
def list_snapshots(conn: Connection, m: str) -> list[SnapshotInfo]:
    set_tenant(conn, m)
    rows = conn.execute(select(*_INFO_COLS).where(hub_registry_snapshot.c.municipality_code == m)
                        .order_by(hub_registry_snapshot.c.as_of, hub_registry_snapshot.c.imported_at)).mappings()
    return [_info(r) for r in rows]


def latest_snapshot(conn: Connection, m: str) -> SnapshotInfo | None:
    """Newest by as-of date (then import time): what shelters and matching use."""
    set_tenant(conn, m)
    r = conn.execute(select(*_INFO_COLS).where(hub_registry_snapshot.c.municipality_code == m)
                     .order_by(hub_registry_snapshot.c.as_of.desc(), hub_registry_snapshot.c.imported_at.desc(),
                               hub_registry_snapshot.c.snapshot_id.desc()).limit(1)).mappings().first()
    return _info(r) if r is not None else None


def snapshot_with_sha(conn: Connection, m: str, sha256: str) -> SnapshotInfo | None:
    """The municipality's stored snapshot of exactly that file (a laptop's ``base`` for a difference)."""
    set_tenant(conn, m)
    r = conn.execute(select(*_INFO_COLS).where(hub_registry_snapshot.c.municipality_code == m,
                                               hub_registry_snapshot.c.sha256 == sha256).limit(1)).mappings().first()
    return _info(r) if r is not None else None


def _sealed(conn: Connection, m: str, sid: str, column: str) -> tuple[bytes, str, str]:
    set_tenant(conn, m)
    r = conn.execute(select(hub_registry_snapshot.c[column], hub_registry_snapshot.c.key_id,
                            hub_registry_snapshot.c.sha256).where(
        hub_registry_snapshot.c.municipality_code == m, hub_registry_snapshot.c.snapshot_id == sid)).first()
    if r is None:
        raise RegistryError(f"no registry snapshot {sid} for municipality {m}")
    return bytes(r[0]), r[1], r[2]


def open_file(engine: Engine, key: DataKey, m: str, snapshot_id: str) -> bytes:
    with engine.connect() as conn:
        blob, key_id, sha = _sealed(conn, m, snapshot_id, "file_ct")
    data = key.open(_file_context(m, snapshot_id, sha), blob, key_id)
    if hashlib.sha256(data).hexdigest() != sha:
        raise RegistryError(f"snapshot {snapshot_id}: stored file does not match its SHA-256")
    return data


@dataclass
class Records:
    """The parsed residents of one snapshot (decrypted, in memory)."""

    municipality_code: str
    snapshot_id: str
    as_of: str
    fields: list[str]
    gaiji: dict[str, str]
    rows: list[list[Any]]
    _by_id: dict[str, int] | None = None
    _derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _derive_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def derived(self, name: str, build: Callable[["Records"], Any]) -> Any:
        """``build(self)`` once per cached snapshot: what a caller parses from the rows (the safety
        list's sorted residents) lives and is dropped with the decrypted rows, in this process only.
        ``build`` must return something the caller never mutates (the snapshot never changes)."""
        hit = self._derived.get(name)
        if hit is not None:
            return hit
        with self._derive_lock:  # two requests at once build it once
            hit = self._derived.get(name)
            if hit is None:
                hit = self._derived[name] = build(self)
            return hit

    def by_id(self, resident_id: str) -> list[Any] | None:
        if self._by_id is None:
            i = self.fields.index("resident_id")
            self._by_id = {str(r[i]): n for n, r in enumerate(self.rows)}
        n = self._by_id.get(str(resident_id))
        return self.rows[n] if n is not None else None

    def as_dict(self, row: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(self.fields, row))


_records_cache: "OrderedDict[tuple[int, str, str], Records]" = OrderedDict()
_records_lock = threading.Lock()
RECORDS_CACHE = SyncSettings.from_env().hub_records_cache


def open_records(engine: Engine, key: DataKey, m: str, snapshot: SnapshotInfo, *,
                 conn: Connection | None = None) -> Records:
    """Decrypted records of a snapshot; a few are kept in memory (a snapshot never changes), each with
    what callers derived from it (:meth:`Records.derived`) — evicted together. ``conn``: read through
    the caller's transaction (a SQLite hub's writer holds the only lock; a second connection waits)."""
    ck = (id(engine), m, snapshot.snapshot_id)
    with _records_lock:
        hit = _records_cache.get(ck)
        if hit is not None:
            _records_cache.move_to_end(ck)
            return hit
    if conn is not None:
        blob, key_id, sha = _sealed(conn, m, snapshot.snapshot_id, "records_ct")
    else:
        with engine.connect() as own:
            blob, key_id, sha = _sealed(own, m, snapshot.snapshot_id, "records_ct")
    doc = json.loads(key.open(_records_context(m, snapshot.snapshot_id, sha), blob, key_id))
    rec = Records(m, snapshot.snapshot_id, snapshot.as_of, list(doc["fields"]), dict(doc.get("gaiji") or {}),
                  doc["rows"])
    with _records_lock:
        _records_cache[ck] = rec
        while len(_records_cache) > RECORDS_CACHE:
            _records_cache.popitem(last=False)
    return rec


def basic_four(rec: Records, row: Sequence[Any]) -> dict[str, str]:
    """氏名, 生年月日, 性別, 住所 — all a host shelter may learn of a home municipality's resident."""
    d = rec.as_dict(row)
    name = "　".join(x for x in (d.get("family_name") or "", d.get("given_name") or "") if x)
    if not name:
        name = " ".join(x for x in (d.get("family_name_kana") or "", d.get("given_name_kana") or "") if x) \
            or (d.get("alpha_name") or "")
    sex = {"M": "男", "F": "女"}.get(d.get("sex") or "", "")
    return {"name": name, "birth_date": d.get("birth_date") or "", "sex": sex, "address": d.get("address") or ""}


# ---- laptops pulling their municipality's snapshot ---------------------------------------------------
REGISTRY_PURPOSE = "anpi-registry-1"


def manifest_message(manifest: Mapping[str, Any]) -> bytes:
    return canonical_bytes({"purpose": REGISTRY_PURPOSE, **manifest})


def device_package(engine: Engine, identity: HubIdentity, key: DataKey, device: Mapping[str, Any],
                   have: str | None = None, *, send_file: bool = True) -> dict[str, Any]:
    """The newest snapshot of the device's municipality, for that device only.

    ``manifest`` (signed by the hub) says what it is and how to import it; ``file`` is
    ``Box(hub box key, device key)`` of the bytes, base64 — or ``None`` when the laptop says it
    already holds that file (``have`` = its SHA-256): nothing is sent, nothing disclosed.  Each
    disclosure is audited. ``send_file=False``: the file goes in chunks
    (:mod:`sync.hub.registry_pull`); the answer then says ``unchanged`` instead of leaving the file out.
    """
    m = device["municipality_code"]
    with engine.connect() as conn:
        snap = latest_snapshot(conn, m)
        name = conn.execute(select(hub_municipality.c.name)
                            .where(hub_municipality.c.municipality_code == m)).scalar_one_or_none()
    if snap is None:
        raise RegistryError("the hub holds no registry snapshot for this laptop's municipality yet")
    manifest = {"hub_id": identity.hub_id, "device_id": device["device_id"], "municipality_code": m,
                "municipality_name": name, "snapshot_id": snap.snapshot_id, "as_of": snap.as_of,
                "source_file": snap.source_file, "sha256": snap.sha256, "size": snap.size,
                "row_count": snap.row_count, "encoding": snap.encoding, "profile": snap.profile,
                "options": snap.options, "issued_at": utcnow().isoformat()}
    signature = crypto.sign_detached(identity.sign_key, manifest_message(manifest))
    if have and have == snap.sha256:
        return {"manifest": manifest, "signature": signature, "file": None, **({} if send_file else {"unchanged": True})}
    sealed = b""
    if send_file:
        data = open_file(engine, key, m, snap.snapshot_id)
        box = crypto.hub_box(identity.box_key, device["public_key"])
        sealed = bytes(box.encrypt(data))
    with engine.begin() as conn:
        set_tenant(conn, m)
        audit.record(conn, m, actor=f"device:{device['name']}", action="registry.pulled",
                     detail={"snapshot_id": snap.snapshot_id, "sha256": snap.sha256, "device_id": device["device_id"],
                             "rows": snap.row_count})
    if not send_file:
        return {"manifest": manifest, "signature": signature, "file": None, "unchanged": False}
    return {"manifest": manifest, "signature": signature, "file": crypto.b64e(sealed)}


def rows_restricted(rec: Records) -> set[str]:
    i, r = rec.fields.index("resident_id"), rec.fields.index("restricted")
    return {str(row[i]) for row in rec.rows if row[r]}


def iter_rows(rec: Records) -> Iterable[dict[str, Any]]:
    for row in rec.rows:
        yield rec.as_dict(row)
