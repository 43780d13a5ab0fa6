"""Admin JSON API: staff accounts, registry snapshot import jobs (with progress), the audit log."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.api.deps import get_session
from app.services import accounts, audit
from app.services.errors import NotFound
from app.web import admin as admin_views

router = APIRouter(prefix="/api", tags=["admin"], dependencies=[CSRF])


def _user_dict(u: Any) -> dict[str, Any]:
    return {"id": u.id, "name": u.name, "role": u.role, "disabled": u.disabled, "pin_set": bool(u.pin_hash),
            "setup_code_open": bool(u.setup_hash),
            "locked_until": u.locked_until.isoformat() if u.locked_until else None}


@router.get("/users")
def list_users(user: CurrentUser = Depends(require("admin")), session: Session = Depends(get_session)) -> dict[str, Any]:
    return {"users": [_user_dict(u) for u in accounts.list_users(session)]}


class UserIn(BaseModel):
    name: str
    role: str
    pin: Optional[str] = None


@router.post("/users", status_code=201)
def add_user(body: UserIn, user: CurrentUser = Depends(require("admin")),
             session: Session = Depends(get_session)) -> dict[str, Any]:
    """A new account: with `pin`, or else with a one-time `setup_code` in this answer (shown only here)."""
    u, code = admin_views.add_user(session, user, "POST /api/users", body.name, body.role, body.pin or "")
    session.commit()
    return {**_user_dict(u), **({"setup_code": code} if code else {})}


@router.post("/users/{user_id}/setup-code")
def issue_setup_code(user_id: str, user: CurrentUser = Depends(require("admin")),
                     session: Session = Depends(get_session)) -> dict[str, Any]:
    """A new one-time setup code for the account (its PIN, if any, stops working)."""
    u, code = admin_views.issue_setup_code(session, user, "POST /api/users/{user_id}/setup-code", user_id)
    session.commit()
    return {**_user_dict(u), "setup_code": code}


@router.post("/users/{user_id}/disable")
def disable_user(user_id: str, user: CurrentUser = Depends(require("admin")),
                 session: Session = Depends(get_session)) -> dict[str, Any]:
    u = admin_views.disable_user(session, user, "POST /api/users/{user_id}/disable", user_id)
    session.commit()
    return _user_dict(u)


@router.get("/registry/snapshots")
def snapshots(user: CurrentUser = Depends(require("admin")), session: Session = Depends(get_session)) -> dict[str, Any]:
    from app.services.registry import list_snapshots

    return {"snapshots": [{"id": x.id, "as_of": x.as_of.isoformat(), "source_file": x.source_file, "sha256": x.sha256,
                           "rows": x.row_count, "imported_at": x.imported_at.isoformat(), "imported_by": x.imported_by}
                          for x in list_snapshots(session)]}


@router.post("/registry/import", status_code=202)
def registry_import(request: Request, file: UploadFile = File(...), profile: str = Form("auto"),
                    encoding: str = Form("auto"), as_of: str = Form(""), quarantine_bad_rows: bool = Form(False),
                    user: CurrentUser = Depends(require("admin"))) -> dict[str, Any]:
    """Start importing a registry snapshot in the background; poll /api/registry/jobs/{id}.
    `quarantine_bad_rows`: load the good rows, leave the bad ones out (the snapshot is marked incomplete)."""
    from app.services.registry import parse_as_of

    job = admin_views.start_registry_job(request.app, user, file, profile=profile, encoding=encoding,
                                         as_of=parse_as_of(as_of), quarantine=quarantine_bad_rows)
    return job.as_dict()


@router.get("/registry/jobs/{job_id}")
def registry_job(job_id: str, request: Request, user: CurrentUser = Depends(require("admin"))) -> dict[str, Any]:
    """Progress of an import (rows so far, then done/failed with the problems in Japanese).

    Send `X-Anpi-Poll: 1` so that polling does not keep the session from auto-locking."""
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}", "取込処理が見つかりません")
    return job.as_dict()


@router.get("/audit")
def audit_log(request: Request, user_name: str = "", action: str = "", subject: str = "", text: str = "",
              since: str = "", until: str = "", limit: int = 100, offset: int = 0,
              user: CurrentUser = Depends(require("admin")), session: Session = Depends(get_session)) -> dict[str, Any]:
    f = admin_views.audit_filter(user_name, action, subject, text, since, until)
    rows = audit.query(session, f, limit=max(1, min(limit, 1000)), offset=max(0, offset))
    audit.record(session, user, "audit_view", "GET /api/audit",
                 detail={"filter": {"user": f.user, "action": f.action, "subject": f.subject, "text": f.text}})
    session.commit()
    return {"entries": [audit.as_dict(e) for e in rows]}


@router.get("/audit/verify")
def audit_verify(user: CurrentUser = Depends(require("admin")), session: Session = Depends(get_session)) -> dict[str, Any]:
    r = audit.verify(session)
    return {"ok": r.ok, "entries": r.entries, "first_bad_id": r.first_bad_id, "reason": r.reason, "reason_ja": r.reason_ja}


@router.get("/audit/export.jsonl")
def audit_export(user: CurrentUser = Depends(require("admin")), session: Session = Depends(get_session)) -> Response:
    """The whole log as JSON lines (the export is itself recorded)."""
    import json

    audit.record(session, user, "audit_export", "GET /api/audit/export.jsonl", detail={"format": "jsonl"})
    session.commit()
    body = "".join(json.dumps(audit.as_dict(e), ensure_ascii=False) + "\n" for e in audit.query(
        session, None, limit=10_000_000, newest_first=False))
    return Response(body.encode("utf-8"), media_type="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'})


@router.post("/roster/import")
def roster_import(request: Request, file: UploadFile = File(...), user: CurrentUser = Depends(require("roster.import")),
                  session: Session = Depends(get_session)) -> dict[str, Any]:
    """Load a volunteers' roster file; readable rows become evacuees, the rest come back as rejects."""
    import shutil
    import tempfile
    from pathlib import Path

    from app.services.roster import import_roster
    from app.web.common import upload_name

    name = upload_name(file.filename, "roster.csv")
    with tempfile.TemporaryDirectory(prefix="anpi-roster-") as tmp:
        path = Path(tmp) / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        result = import_roster(request.app.state.engine, path, by=user.name, rejects_out=Path(tmp) / "rejects.csv")
    audit.record(session, user, "roster_import", "POST /api/roster/import",
                 detail={"file": name, "import_id": result.import_id, "rows": result.rows, "accepted": result.accepted})
    session.commit()
    def rows(problems: list) -> list[dict[str, Any]]:
        return [{"line": r.line, "field": r.field, "message": r.message, "message_ja": r.ja(), "value": r.value}
                for r in problems]

    # rejects: rows with neither name nor reading; flags: registered, a cell kept as typed for staff;
    # duplicates: people already registered (same roster row, or same name/reading and birth date)
    return {"import_id": result.import_id, "rows": result.rows, "accepted": result.accepted,
            "rejects": rows(result.rejects), "flags": rows(result.flags), "duplicates": rows(result.duplicates)}
