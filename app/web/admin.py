"""管理 (admin only): staff accounts, registry snapshot upload with progress, the audit log browser."""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, ROLE_JA, ROLES, CurrentUser, require
from app.ids import new_id
from app.services import accounts, audit
from app.services.errors import AnpiError, Conflict, InvalidInput
from app.web.common import audit_view, db, redirect, render, upload_name

router = APIRouter(dependencies=[CSRF], include_in_schema=False)

PROFILES = ("auto", "anpi", "kihon")
ENCODINGS = ("auto", "utf-8", "cp932", "euc-jp")


# --- users ----------------------------------------------------------------------------------

def _users_page(request: Request, session: Session, *, error: str = "", error_field: str = "", message: str = "",
                form: dict[str, str] | None = None, setup: tuple[str, str] | None = None,
                status_code: int = 200) -> HTMLResponse:
    """The 利用者 page; `setup` = (name, one-time setup code) is shown this once and never again."""
    users = accounts.list_users(session)
    return render(request, "admin_users.html", {"users": users, "roles": ROLES, "error": error,
                                                "error_field": error_field, "message": message,
                                                "form": form or {}, "setup": setup}, status_code=status_code)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, done: str = "", user: CurrentUser = Depends(require("admin")),
               session: Session = Depends(db)) -> HTMLResponse:
    return _users_page(request, session, message=done)


def add_user(session: Session, actor: CurrentUser, screen: str, name: str, role: str,
             pin: str) -> tuple[Any, str | None]:
    """The new account and, when no PIN was given, its one-time setup code (to show once)."""
    u, code = accounts.add_user_with_code(session, name, role, pin or None)
    audit.record(session, actor, "user_add", screen, subjects=[f"staff:{u.id}"],
                 detail={"name": u.name, "role": u.role, "pin_set": bool(pin), "setup_code_issued": bool(code)})
    return u, code


def issue_setup_code(session: Session, actor: CurrentUser, screen: str, user_id: str) -> tuple[Any, str]:
    """A new setup code for an account (first use, an old PIN-less account, or a forgotten PIN)."""
    target = accounts.get_user(session, user_id)
    code = accounts.issue_setup_code(session, target)
    audit.record(session, actor, "setup_code", screen, subjects=[f"staff:{target.id}"], detail={"name": target.name})
    return target, code


def disable_user(session: Session, actor: CurrentUser, screen: str, user_id: str) -> Any:
    target = accounts.get_user(session, user_id)
    if target.id == actor.id:
        raise Conflict("you cannot disable your own account", "自分のアカウントは無効にできません")
    accounts.disable_user(session, target.id)
    audit.record(session, actor, "user_disable", screen, subjects=[f"staff:{target.id}"], detail={"name": target.name})
    return target


@router.post("/admin/users", response_class=HTMLResponse)
def users_add(request: Request, name: str = Form(""), role: str = Form("staff"), pin: str = Form(""),
              user: CurrentUser = Depends(require("admin")), session: Session = Depends(db)) -> Response:
    try:
        u, code = add_user(session, user, "POST /admin/users", name, role, pin)
        session.commit()
    except AnpiError as exc:
        session.rollback()
        return _users_page(request, session, error=exc.message_ja, error_field=getattr(exc, "field", "") or "name",
                           form={"name": name, "role": role}, status_code=422)
    done = f"{u.name} さん ({ROLE_JA.get(u.role, u.role)}) を追加しました"
    if code:  # shown on this page only: never in a URL, a redirect or the log
        return _users_page(request, session, message=done, setup=(u.name, code))
    return redirect(f"/admin/users?done={done}")


@router.post("/admin/users/{user_id}/setup-code", response_class=HTMLResponse)
def users_setup_code(request: Request, user_id: str, user: CurrentUser = Depends(require("admin")),
                     session: Session = Depends(db)) -> Response:
    try:
        target, code = issue_setup_code(session, user, "POST /admin/users/{user_id}/setup-code", user_id)
        session.commit()
    except AnpiError as exc:
        session.rollback()
        return _users_page(request, session, error=exc.message_ja, status_code=404)
    return _users_page(request, session, message=f"{target.name} さんの初期設定コードを発行しました",
                       setup=(target.name, code))


@router.post("/admin/users/{user_id}/disable", response_class=HTMLResponse)
def users_disable(request: Request, user_id: str, user: CurrentUser = Depends(require("admin")),
                  session: Session = Depends(db)) -> Response:
    try:
        target = disable_user(session, user, "POST /admin/users/{user_id}/disable", user_id)
        session.commit()
    except AnpiError as exc:
        session.rollback()
        return _users_page(request, session, error=exc.message_ja, status_code=409)
    return redirect(f"/admin/users?done={target.name} さんを無効にしました")


# --- registry import jobs -------------------------------------------------------------------

@dataclass
class RegistryJob:
    id: str
    file_name: str
    user_name: str
    status: str = "running"  # running | done | failed
    rows: int = 0
    message_ja: str = ""
    problems: list[str] = field(default_factory=list)
    snapshot: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "file_name": self.file_name, "status": self.status, "rows": self.rows,
                "message_ja": self.message_ja, "problems": self.problems, "snapshot": self.snapshot}


def start_registry_job(app: Any, actor: CurrentUser, upload: UploadFile, *, profile: str, encoding: str,
                       as_of: date | None, quarantine: bool = False) -> RegistryJob:
    """Save the upload and import it in a background thread with its own connection (the UI stays usable)."""
    if profile not in PROFILES:
        raise InvalidInput(f"unknown profile {profile!r}", "形式が正しくありません", "profile")
    if encoding not in ENCODINGS:
        raise InvalidInput(f"unknown encoding {encoding!r}", "文字コードが正しくありません", "encoding")
    name = upload_name(upload.filename, "registry.csv")
    tmpdir = Path(tempfile.mkdtemp(prefix="anpi-registry-"))
    path = tmpdir / name
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out)
    job = RegistryJob(new_id(), name, actor.name)
    app.state.jobs[job.id] = job
    threading.Thread(target=_run_registry_job, args=(app, job, actor, path, profile, encoding, as_of, quarantine),
                     name=f"registry-import-{job.id}", daemon=True).start()
    return job


def _run_registry_job(app: Any, job: RegistryJob, actor: CurrentUser, path: Path, profile: str, encoding: str,
                      as_of: date | None, quarantine: bool = False) -> None:
    from app.db import sqlite_engine
    from app.services.errors import AlreadyDone, FileFormatError
    from app.services.registry import import_registry

    engine = sqlite_engine(app.state.db_path) if app.state.engine.dialect.name == "sqlite" else app.state.engine
    detail: dict[str, Any] = {"file": job.file_name, "profile": profile, "encoding": encoding}

    def progress(n: int) -> None:
        job.rows = n

    try:
        # the upload's folder is removed afterwards: the report of left-out rows goes beside the database
        report = Path(app.state.db_path).parent / f"{path.stem}.quarantine-{job.id}.csv"
        result = import_registry(engine, path, profile=profile, encoding=encoding, as_of=as_of,
                                 imported_by=actor.name, progress=progress, quarantine_bad_rows=quarantine,
                                 quarantine_report=report)
        snap = result.snapshot
        job.snapshot = {"id": snap.id, "as_of": snap.as_of.isoformat(), "rows": snap.row_count,
                        "sha256": snap.sha256, "elapsed_s": round(result.elapsed_s, 1), "quarantined": snap.quarantined}
        job.rows = snap.row_count
        job.message_ja = f"取り込みました: {snap.row_count}人 (基準日 {snap.as_of})"
        if snap.quarantined:
            job.message_ja += f"。読めない {snap.quarantined}行を除いたため、この台帳は不完全です"
            job.problems = _quarantined_rows(report)
            detail["quarantined"] = snap.quarantined
        job.status = "done"
        detail.update(snapshot_id=snap.id, rows=snap.row_count, result="done")
    except AlreadyDone as exc:
        job.status, job.message_ja = "failed", exc.message_ja
        detail["result"] = "already_done"
    except FileFormatError as exc:
        job.status = "failed"
        job.message_ja = "ファイルに問題があるため、何も取り込んでいません"
        job.problems = [p.ja() for p in exc.problems]
        detail.update(result="refused", problems=exc.total)
    except AnpiError as exc:
        job.status, job.message_ja = "failed", exc.message_ja
        detail["result"] = "failed"
    except Exception as exc:  # noqa: BLE001 - a background job must always finish its record
        job.status, job.message_ja = "failed", f"取り込みに失敗しました: {exc}"
        detail["result"] = "error"
    finally:
        if engine is not app.state.engine:
            engine.dispose()
        shutil.rmtree(path.parent, ignore_errors=True)
        with Session(app.state.engine) as s:
            audit.record(s, actor, "registry_import", "POST /admin/registry", detail=detail)
            s.commit()


def _quarantined_rows(report: Path, limit: int = 50) -> list[str]:
    """The first left-out rows, in Japanese, for the job's screen (the file has them all)."""
    import csv

    with report.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    shown = [f"{r['ファイル']} {r['行']}行目" + (f" 「{r['項目']}」" if r["項目"] else "") + f": {r['理由']}"
             for r in rows[:limit]]
    return shown + ([f"ほか {len(rows) - limit}行"] if len(rows) > limit else [])


@router.get("/admin/registry", response_class=HTMLResponse)
def registry_page(request: Request, job: str = "", user: CurrentUser = Depends(require("admin")),
                  session: Session = Depends(db)) -> HTMLResponse:
    from app.services.registry import list_snapshots

    return render(request, "admin_registry.html", {
        "snapshots": list(reversed(list_snapshots(session))), "job": request.app.state.jobs.get(job),
        "profiles": PROFILES, "encodings": ENCODINGS, "error": ""})


@router.post("/admin/registry", response_class=HTMLResponse)
def registry_upload(request: Request, file: UploadFile = File(...), profile: str = Form("auto"),
                    encoding: str = Form("auto"), as_of: str = Form(""), quarantine: str = Form(""),
                    user: CurrentUser = Depends(require("admin")), session: Session = Depends(db)) -> Response:
    from app.services.registry import list_snapshots, parse_as_of

    try:
        job = start_registry_job(request.app, user, file, profile=profile, encoding=encoding, as_of=parse_as_of(as_of),
                                 quarantine=bool(quarantine))
    except AnpiError as exc:
        return render(request, "admin_registry.html", {
            "snapshots": list(reversed(list_snapshots(session))), "job": None, "profiles": PROFILES,
            "encodings": ENCODINGS, "error": exc.message_ja}, status_code=422)
    return redirect(f"/admin/registry?job={job.id}")


# --- backups (今すぐバックアップ) -------------------------------------------------------------

@router.post("/admin/backup", response_class=HTMLResponse)
def backup_now(request: Request, user: CurrentUser = Depends(require("admin"))) -> Response:
    """A verified copy into the backup folder now; no database session is held while it runs."""
    from app.services.backup import BackupScheduler

    app_state, settings = request.app.state, request.app.state.settings
    scheduler = getattr(app_state, "backup_scheduler", None)
    if scheduler is None:
        if settings.backup_dir is None:
            raise InvalidInput("no backup folder configured", "バックアップ先フォルダが設定されていません"
                               "（システム担当者に設定を依頼してください）", "backup_dir")
        scheduler = BackupScheduler(app_state.db_path, lambda: Session(app_state.engine, expire_on_commit=False),
                                    settings.backup_dir, interval_minutes=settings.backup_interval_minutes,
                                    keep=settings.backup_keep)
    rec = scheduler.run_once("manual")
    with Session(app_state.engine) as s:  # a backup holds everyone's data: audited like an export
        audit.record(s, user, "backup", "POST /admin/backup", detail={"file": rec.path, "ok": rec.ok, "sha256": rec.sha256})
        s.commit()
    return redirect(f"/dashboard?backup={'done' if rec.ok else 'failed'}")


# --- audit log ------------------------------------------------------------------------------

def _ids(text: str) -> tuple[int, ...]:
    """`ids=3,17,42` from the anomaly report's links (at most 1,000; anything else is ignored)."""
    return tuple(int(x) for x in text.split(",") if x.strip().isdigit())[:1000]


def audit_filter(user: str, action: str, subject: str, text: str, since: str, until: str,
                 ids: str = "") -> audit.AuditFilter:
    def _d(v: str) -> date | None:
        try:
            return date.fromisoformat(v) if v else None
        except ValueError:
            raise InvalidInput(f"not a date: {v!r}", "日付は YYYY-MM-DD で入力してください", "since") from None

    return audit.AuditFilter(user=user.strip(), action=action.strip(), subject=subject.strip(), text=text.strip(),
                             since=_d(since), until=_d(until), ids=_ids(ids))


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(request: Request, user_name: str = "", action: str = "", subject: str = "", text: str = "",
               since: str = "", until: str = "", page: int = 1, verify: int = 0, ids: str = "",
               user: CurrentUser = Depends(require("admin")), session: Session = Depends(db)) -> HTMLResponse:
    per_page = 100
    page = max(1, page)
    error = ""
    try:
        f = audit_filter(user_name, action, subject, text, since, until, ids)
    except InvalidInput as exc:
        f, error = audit.AuditFilter(), exc.message_ja
    from app.web.common import local_time

    from app.web.audit_ja import detail_items, screen_ja, subject_ja

    entries = [{**d, "at_local": local_time(e.at, "%Y-%m-%d %H:%M:%S"), "screen_ja": screen_ja(d["screen"]),
                "subjects_ja": [subject_ja(x) for x in d["subjects"]], "detail_ja": detail_items(d["detail"])}
               for e in audit.query(session, f, limit=per_page + 1, offset=(page - 1) * per_page)
               for d in (audit.as_dict(e),)]
    more = len(entries) > per_page
    entries = entries[:per_page]
    result = audit.verify(session) if verify else None
    audit_view(session, request, user, "audit_view",
               detail={"filter": {"user": f.user, "action": f.action, "subject": f.subject, "text": f.text,
                                  "since": since, "until": until, "ids": list(f.ids[:50])}, "page": page,
                       "verify": bool(verify)})
    session.commit()
    users = accounts.list_users(session)
    return render(request, "admin_audit.html", {
        "entries": entries, "f": f, "since": since, "until": until, "page": page, "more": more, "verify": result,
        "actions": audit.ACTIONS, "users": users, "error": error,
        "query": {"user_name": user_name, "action": action, "subject": subject, "text": text, "since": since,
                  "until": until, **({"ids": ids} if f.ids else {})}})


@router.get("/admin/audit/anomalies", response_class=HTMLResponse)
def anomalies_page(request: Request, user: CurrentUser = Depends(require("admin")),
                   session: Session = Depends(db)) -> HTMLResponse:
    """監査ログの異常報告: each flag links to the log entries behind it (ids only, no addresses)."""
    from app.services.audit_anomalies import shelter_report

    flags = shelter_report(session)
    audit_view(session, request, user, "audit_view", detail={"report": "anomalies", "flags": len(flags)})
    session.commit()
    rows = [{"f": f, "ids": ",".join(str(i) for i in f.entry_ids[:1000]),
             "residents": [s.split(":", 1)[1] for s in f.subjects if s.startswith("resident:")]} for f in flags]
    return render(request, "admin_audit_anomalies.html", {"rows": rows})
