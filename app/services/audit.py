"""The audit log: who saw or changed which person's record, when, from which screen.

Append-only and hash-chained (see `app.audit_models.AuditEntry`). `record` is a plain function
taking a session, so the web UI, the CLI and the hub write the same entries; it never commits
(the entry commits with the caller's change, or with the page view that showed the data).

Each entry's hash is taken over the canonical JSON list
`[id, at, user_id, user_name, role, action, screen, subjects, detail, prev_hash]`; the first
entry's `prev_hash` is 64 zeros. Entries written before the chain had a key used plain SHA-256;
since then every entry is an HMAC-SHA256 under a key kept outside the database
(`app.services.audit_key`), so a database file alone cannot be re-chained after a deletion.
The switch is marked in the chain itself: the first keyed entry is an `audit_keyed` entry naming
the key id, and that entry and every later one are keyed (a new key, e.g. after a lost key file,
writes a new marker). `verify` recomputes every hash and names the first entry whose content or
link does not fit. A cut *tail* leaves no trace in the file: that is what the chain head sent to
the hub at every sync is for (`head_report`, `anpi hub audit verify`).
"""

from __future__ import annotations

import hashlib
import hmac
import json

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, select

from app.audit_models import AuditEntry
from app.formats.tables import csv_writer
from app.ids import aware, utcnow
from app.models import Staff
from app.services.audit_key import audit_key, key_id
from app.services.errors import InvalidInput
from sync.files import atomic_path

GENESIS = "0" * 64
#: the entry that starts (or changes) the chain's key; itself keyed with the new key
KEY_MARKER = "audit_keyed"

#: actions written by the faces; free text is allowed, these are the ones the UI filters on
ACTIONS = {
    "login": "ログイン", "login_failed": "ログイン失敗", "pin_set": "暗証番号設定", "lock": "ロック",
    "login_refused": "ログイン拒否（試行回数超過）", "setup_code": "初期設定コード発行",
    "view": "閲覧", "search": "検索", "register": "受付登録", "decide": "照合判定", "check_in": "入所",
    "check_out": "退所", "transfer": "移動", "edit": "修正", "merge": "統合", "export": "出力", "print": "印刷",
    "roster_import": "名簿取込", "registry_import": "台帳取込", "user_add": "利用者追加",
    "user_disable": "利用者無効化", "audit_view": "監査ログ閲覧", "audit_export": "監査ログ出力",
    "hq_confirm": "本部確認記録", "inquiry": "安否照会", "inquiry_search": "安否照会(検索)",
    "certificate_issue": "証明書発行", "certificate_reissue": "証明書再発行", "certificate_void": "証明書無効化",
    "pfif_import": "PFIF取込", "pfif_relink": "PFIF再照合", "self_entry": "本人記入（送信）", "self_discard": "本人記入の取消",
    "backup": "バックアップ", "restore": "復元", KEY_MARKER: "監査ログ鍵の開始", "shelter_save": "避難所の登録・変更",
    "device_code": "端末の接続コード表示", "device_pair": "端末の登録", "device_pair_failed": "端末の登録失敗",
    "device_revoke": "端末の登録取消",
}


def _canon(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _utc(at: datetime) -> datetime:
    """Aware UTC (the column type refuses naive values); naive input is taken as UTC (`app.ids.aware`)."""
    return aware(at)  # type: ignore[return-value]  # never None for a datetime


def _at_text(at: datetime) -> str:
    """The time as hashed: naive UTC ISO text, the same whether the database returns it aware or not."""
    return _utc(at).replace(tzinfo=None).isoformat(timespec="microseconds")


def entry_hash(e: AuditEntry, key: bytes | None = None) -> str:
    """SHA-256 of the entry (an old, unkeyed entry), or its HMAC-SHA256 under `key`."""
    payload = _canon([e.id, _at_text(e.at), e.user_id, e.user_name, e.role, e.action, e.screen,
                      e.subjects, e.detail, e.prev_hash]).encode("utf-8")
    if key is None:
        return hashlib.sha256(payload).hexdigest()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def db_file(session: Session) -> Path | None:
    """The SQLite file behind a session (the audit key lives beside it, never inside it)."""
    name = session.get_bind().url.database
    return Path(name) if name and name != ":memory:" else None


def session_key(session: Session, *, create: bool = False) -> bytes | None:
    return audit_key(db_file(session), create=create)


def _marker_key_id(session: Session) -> str | None:
    """The key id named by the chain's newest key marker (None: the chain has never been keyed)."""
    m = session.exec(select(AuditEntry).where(AuditEntry.action == KEY_MARKER)
                     .order_by(AuditEntry.id.desc()).limit(1)).first()  # type: ignore[union-attr]
    return json.loads(m.detail or "{}").get("key_id") if m else None


def _who(user: Any) -> tuple[str, str, str]:
    """(id, name, role) of a Staff row, of any object with those attributes, or of a plain name."""
    if user is None:
        return "", "", ""
    if isinstance(user, str):
        return "", user, ""
    return (str(getattr(user, "id", "") or ""), str(getattr(user, "name", "") or ""),
            str(getattr(user, "role", "") or ""))


def record(session: Session, user: Staff | Any | str | None, action: str, screen: str,
           subjects: Iterable[str] = (), detail: dict[str, Any] | None = None,
           *, at: datetime | None = None) -> AuditEntry:
    """Append one entry in the caller's transaction (the caller commits).

    `subjects` are record references such as "evacuee:01J…" or "resident:1001" (duplicates
    dropped, order kept); `detail` holds the search text, the decision, the file name, …
    """
    if not action or action == KEY_MARKER:
        raise InvalidInput(f"audit action {action!r} is not allowed", "監査の操作名が正しくありません", "action")
    key = session_key(session, create=True)
    last = session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).first()  # type: ignore[union-attr]
    when = _utc(at or utcnow())
    if key is not None:
        previous = _marker_key_id(session)
        if previous != key_id(key):  # first keyed entry of this chain, or a new key
            last = _append(session, last, key, ("", "system", ""), KEY_MARKER, "audit key", [],
                           {"key_id": key_id(key), "previous_key_id": previous,
                            "keyed_from": (last.id + 1) if last else 1}, when)
    subs = list(dict.fromkeys(str(s) for s in subjects if s))
    return _append(session, last, key, _who(user), action, screen, subs, detail or {}, when)


def _append(session: Session, last: AuditEntry | None, key: bytes | None, who: tuple[str, str, str], action: str,
            screen: str, subjects: list[str], detail: dict[str, Any], at: datetime) -> AuditEntry:
    e = AuditEntry(
        id=(last.id + 1) if last else 1, at=at, user_id=who[0], user_name=who[1],
        role=who[2], action=action, screen=screen, subjects=_canon(subjects), detail=_canon(detail),
        prev_hash=last.hash if last else GENESIS, hash="",
    )
    e.hash = entry_hash(e, key)
    session.add(e)
    session.flush()
    return e


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""
    reason_ja: str = ""
    keyed_from: int | None = None  # first keyed entry (None: the chain has no keyed part yet)
    head_id: int = 0  # the last entry (a cut tail is only seen by comparing this with the hub)
    head_hash: str = ""


def _bad(n: int, e: AuditEntry, reason: str, reason_ja: str, keyed_from: int | None) -> VerifyResult:
    return VerifyResult(False, n, e.id, reason, reason_ja, keyed_from)


def verify(session: Session) -> VerifyResult:
    """Walk the chain in id order; the first entry that was changed, removed or re-linked fails it.

    Entries before the first key marker are checked as plain SHA-256 (chains from before the
    key); from the marker on, as HMAC under this laptop's key. A keyed part whose key is not
    here (another laptop's key file) cannot be checked and fails, naming the key id.
    """
    key = session_key(session)
    have = key_id(key) if key is not None else None
    prev_hash, prev_id, n = GENESIS, 0, 0
    active: str | None = None
    keyed_from: int | None = None
    for e in session.exec(select(AuditEntry).order_by(AuditEntry.id)):
        n += 1
        if e.id != prev_id + 1:
            return _bad(n, e, f"entry {prev_id + 1} is missing (next is {e.id})",
                        f"{prev_id + 1}番の記録が削除されています", keyed_from)
        if e.prev_hash != prev_hash:
            return _bad(n, e, f"entry {e.id} does not link to entry {prev_id} (prev_hash differs)",
                        f"{e.id}番の記録が前の記録とつながっていません", keyed_from)
        if e.action == KEY_MARKER:
            active = str(json.loads(e.detail or "{}").get("key_id") or "?")
            keyed_from = keyed_from or e.id
        if active is not None and active != have:
            return _bad(n, e, f"entries from {e.id} on are keyed with audit key {active}, which is not on this "
                              f"laptop (ANPI_AUDIT_KEY_FILE{'; this one is ' + have if have else ''})",
                        f"{e.id}番以降の記録を確かめる鍵がこの端末にありません", keyed_from)
        if entry_hash(e, key if active else None) != e.hash:
            return _bad(n, e, f"entry {e.id} was changed after it was written (hash differs)",
                        f"{e.id}番の記録が書き換えられています", keyed_from)
        prev_hash, prev_id = e.hash, e.id
    return VerifyResult(True, n, keyed_from=keyed_from, head_id=prev_id, head_hash=prev_hash if prev_id else "")


@dataclass
class AuditFilter:
    user: str = ""  # user name or id
    action: str = ""
    subject: str = ""  # part of a subject reference, e.g. an evacuee id or 宛名番号
    text: str = ""  # part of the screen or detail (search text, file name …)
    since: date | None = None
    until: date | None = None
    ids: tuple[int, ...] = ()  # exactly these entries (the anomaly report links to them)


def query(session: Session, f: AuditFilter | None = None, *, limit: int = 200, offset: int = 0,
          newest_first: bool = True) -> list[AuditEntry]:
    f = f or AuditFilter()
    q = select(AuditEntry)
    if f.ids:
        q = q.where(AuditEntry.id.in_(f.ids))  # type: ignore[attr-defined]
    if f.user:
        q = q.where(or_(AuditEntry.user_name == f.user, AuditEntry.user_id == f.user))
    if f.action:
        q = q.where(AuditEntry.action == f.action)
    if f.subject:
        q = q.where(AuditEntry.subjects.contains(f.subject))  # type: ignore[attr-defined]
    if f.text:
        q = q.where(or_(AuditEntry.detail.contains(f.text), AuditEntry.screen.contains(f.text)))  # type: ignore[attr-defined]
    if f.since:
        q = q.where(AuditEntry.at >= _utc(datetime.combine(f.since, datetime.min.time())))
    if f.until:
        q = q.where(AuditEntry.at < _utc(datetime.combine(f.until + timedelta(days=1), datetime.min.time())))
    q = q.order_by(AuditEntry.id.desc() if newest_first else AuditEntry.id)  # type: ignore[union-attr]
    return list(session.exec(q.offset(offset).limit(limit)))


def as_dict(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "at": _at_text(e.at), "user_id": e.user_id, "user_name": e.user_name, "role": e.role,
            "action": e.action, "screen": e.screen, "subjects": json.loads(e.subjects or "[]"),
            "detail": json.loads(e.detail or "{}"), "prev_hash": e.prev_hash, "hash": e.hash}


EXPORT_COLUMNS = ["id", "at", "user_id", "user_name", "role", "action", "screen", "subjects", "detail",
                  "prev_hash", "hash"]


def _all(session: Session) -> Iterator[AuditEntry]:
    yield from session.exec(select(AuditEntry).order_by(AuditEntry.id))


def export(session: Session, out: Path, fmt: str = "auto") -> int:
    """Write the whole log to CSV (UTF-8 with BOM, for Excel) or JSON lines; returns the entry count.

    `fmt` auto picks JSON lines for .jsonl/.json/.ndjson and CSV otherwise. The stored subjects and
    detail JSON are written verbatim, so an exported file can be re-verified outside Anpi.
    """
    out = Path(out)
    if fmt == "auto":
        fmt = "jsonl" if out.suffix.lower() in (".jsonl", ".json", ".ndjson") else "csv"
    if fmt not in ("csv", "jsonl"):
        raise InvalidInput(f"unknown format {fmt!r} (csv or jsonl)", "形式は csv か jsonl です", "format")
    n = 0
    with atomic_path(out) as tmp:
        if fmt == "csv":
            with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
                w = csv_writer(fh)
                w.writerow(EXPORT_COLUMNS)
                for e in _all(session):
                    w.writerow([e.id, _at_text(e.at), e.user_id, e.user_name, e.role, e.action, e.screen, e.subjects,
                                e.detail, e.prev_hash, e.hash])
                    n += 1
        else:
            with tmp.open("w", encoding="utf-8") as fh:
                for e in _all(session):
                    fh.write(json.dumps(as_dict(e), ensure_ascii=False) + "\n")
                    n += 1
    return n


# --- the chain head, for the hub -------------------------------------------------------------

def _file_query(path: Path, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """One row from another shelter database file (the one `anpi restore` kept aside), read-only."""
    from app import db_crypto

    try:
        con = db_crypto.connect(path)
    except (db_crypto.Error, db_crypto.DatabaseKeyError):
        return None
    try:
        return con.execute(sql, args).fetchone()
    except db_crypto.Error:
        return None
    finally:
        con.close()


def file_head(path: Path) -> dict[str, Any] | None:
    """The last entry (seq, hash) of the audit chain in a database file; None if it has none."""
    row = _file_query(Path(path), "SELECT id, hash FROM audit_entry ORDER BY id DESC LIMIT 1")
    return {"seq": int(row[0]), "hash": str(row[1])} if row else None


def _hash_at(session: Session, seq: int) -> str | None:
    e = session.get(AuditEntry, seq)
    return e.hash if e else None


def _restored_from(session: Session, anchor_seq: int) -> dict[str, Any] | None:
    """What the newest `anpi restore` replaced, with the replaced chain's hash at the hub's anchor.

    The replaced database is kept beside the restored one (`kept_as`), so the hub can tell a
    restore (the old chain really had the entry it knows) from a cut.
    """
    r = session.exec(select(AuditEntry).where(AuditEntry.action == "restore")
                     .order_by(AuditEntry.id.desc()).limit(1)).first()  # type: ignore[union-attr]
    if r is None:
        return None
    d = json.loads(r.detail or "{}")
    replaced = d.get("replaced_head") or None
    kept = d.get("kept_as")
    row = _file_query(Path(kept), "SELECT hash FROM audit_entry WHERE id = ?", (anchor_seq,)) if kept else None
    return {"restore_entry": r.id, "at": _at_text(r.at), "replaced_head": replaced,
            "kept_as": Path(kept).name if kept else None, "anchor_hash": str(row[0]) if row else None}


def head_report(session: Session, anchor_seq: int | None) -> dict[str, Any] | None:
    """The chain head the laptop sends the hub at every sync (no personal data: numbers and hashes).

    `anchor_seq` is the head the hub last recorded for this laptop; the report carries this
    chain's hash at that seq (None if the entry is gone), so the hub sees a cut or rewritten
    tail even when new entries were written since.
    """
    last = session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).first()  # type: ignore[union-attr]
    if last is None:
        return None
    key = session_key(session)
    report: dict[str, Any] = {"seq": last.id, "hash": last.hash, "at": _at_text(last.at),
                              "key_id": key_id(key) if key is not None else None}
    if anchor_seq:
        report["anchor"] = {"seq": anchor_seq, "hash": _hash_at(session, anchor_seq)}
        restored = _restored_from(session, anchor_seq)
        if restored is not None:
            report["restored"] = restored
    return report


def sync_report(session: Session, anchor_seq: int | None, uploaded: int, limit: int = 1000) -> dict[str, Any] | None:
    """What one sync sends the hub: the head (with the anchor) and up to `limit` entries after `uploaded`."""
    head = head_report(session, anchor_seq)
    if head is None:
        return None
    entries = session.exec(select(AuditEntry).where(AuditEntry.id > uploaded)
                           .order_by(AuditEntry.id).limit(limit))  # type: ignore[arg-type]
    return {"head": head, "entries": [as_dict(e) for e in entries]}


def reporter(session_factory: Callable[[], AbstractContextManager[Session]]
             ) -> Callable[[int | None, int], dict[str, Any] | None]:
    """The callback `sync.client.sync_once(audit_reporter=…)` calls (sync/ never reads app's tables)."""
    def report(anchor_seq: int | None, uploaded: int) -> dict[str, Any] | None:
        with session_factory() as s:
            return sync_report(s, anchor_seq, uploaded)
    return report
