"""The audit log: who saw or changed which person's record, when, from which screen.

Append-only and hash-chained (see `app.audit_models.AuditEntry`). `record` is a plain function
taking a session, so the web UI, the CLI and the hub write the same entries; it never commits
(the entry commits with the caller's change, or with the page view that showed the data).

Each entry's hash is SHA-256 over the canonical JSON list
`[id, at, user_id, user_name, role, action, screen, subjects, detail, prev_hash]`; the first
entry's `prev_hash` is 64 zeros. `verify` recomputes every hash and names the first entry
whose content or link does not fit.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, select

from app.audit_models import AuditEntry
from app.ids import utcnow
from app.models import Staff
from app.services.errors import InvalidInput

GENESIS = "0" * 64

#: actions written by the faces; free text is allowed, these are the ones the UI filters on
ACTIONS = {
    "login": "ログイン", "login_failed": "ログイン失敗", "pin_set": "暗証番号設定", "lock": "ロック",
    "view": "閲覧", "search": "検索", "register": "受付登録", "decide": "照合判定", "check_in": "入所",
    "check_out": "退所", "transfer": "移動", "edit": "修正", "merge": "統合", "export": "出力", "print": "印刷",
    "roster_import": "名簿取込", "registry_import": "台帳取込", "user_add": "利用者追加",
    "user_disable": "利用者無効化", "audit_view": "監査ログ閲覧", "audit_export": "監査ログ出力",
    "hq_confirm": "本部確認記録", "inquiry": "安否照会", "inquiry_search": "安否照会(検索)",
    "certificate_issue": "証明書発行", "certificate_reissue": "証明書再発行", "certificate_void": "証明書無効化",
    "pfif_import": "PFIF取込", "pfif_relink": "PFIF再照合",
    "backup": "バックアップ", "restore": "復元", "shelter_save": "避難所の登録・変更",
}


def _canon(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _utc(at: datetime) -> datetime:
    """Aware UTC (the column type refuses naive values); naive input is taken as UTC."""
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def _at_text(at: datetime) -> str:
    """The time as hashed: naive UTC ISO text, the same whether the database returns it aware or not."""
    return _utc(at).replace(tzinfo=None).isoformat(timespec="microseconds")


def entry_hash(e: AuditEntry) -> str:
    payload = _canon([e.id, _at_text(e.at), e.user_id, e.user_name, e.role, e.action, e.screen,
                      e.subjects, e.detail, e.prev_hash])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


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
    if not action:
        raise InvalidInput("audit action is empty", "監査の操作名が空です", "action")
    uid, uname, role = _who(user)
    subs = list(dict.fromkeys(str(s) for s in subjects if s))
    last = session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).first()  # type: ignore[union-attr]
    e = AuditEntry(
        id=(last.id + 1) if last else 1, at=_utc(at or utcnow()), user_id=uid, user_name=uname,
        role=role, action=action, screen=screen, subjects=_canon(subs), detail=_canon(detail or {}),
        prev_hash=last.hash if last else GENESIS, hash="",
    )
    e.hash = entry_hash(e)
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


def verify(session: Session) -> VerifyResult:
    """Walk the chain in id order; the first entry that was changed, removed or re-linked fails it."""
    prev_hash = GENESIS
    prev_id = 0
    n = 0
    for e in session.exec(select(AuditEntry).order_by(AuditEntry.id)):
        n += 1
        if e.id != prev_id + 1:
            return VerifyResult(False, n, e.id, f"entry {prev_id + 1} is missing (next is {e.id})",
                                f"{prev_id + 1}番の記録が削除されています")
        if e.prev_hash != prev_hash:
            return VerifyResult(False, n, e.id, f"entry {e.id} does not link to entry {prev_id} (prev_hash differs)",
                                f"{e.id}番の記録が前の記録とつながっていません")
        if entry_hash(e) != e.hash:
            return VerifyResult(False, n, e.id, f"entry {e.id} was changed after it was written (hash differs)",
                                f"{e.id}番の記録が書き換えられています")
        prev_hash, prev_id = e.hash, e.id
    return VerifyResult(True, n)


@dataclass
class AuditFilter:
    user: str = ""  # user name or id
    action: str = ""
    subject: str = ""  # part of a subject reference, e.g. an evacuee id or 宛名番号
    text: str = ""  # part of the screen or detail (search text, file name …)
    since: date | None = None
    until: date | None = None


def query(session: Session, f: AuditFilter | None = None, *, limit: int = 200, offset: int = 0,
          newest_first: bool = True) -> list[AuditEntry]:
    f = f or AuditFilter()
    q = select(AuditEntry)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    if fmt == "csv":
        with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
            w = csv.writer(fh)
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
    tmp.replace(out)
    return n
