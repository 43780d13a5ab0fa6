"""捜索依頼 (desk): people sought through Google Person Finder, the residents and evacuees the engine
linked them to, confirm / 別人 / 取り消し, and the upload of a PFIF or Person Finder CSV file.

Thin: every rule (what is proposed, what the desk may see under 閲覧制限) lives in
app.services.pfif; this module renders, audits what was shown, and turns errors into messages.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import pfif
from app.services.errors import AlreadyDone, AnpiError, Conflict, FileFormatError, NotFound
from app.web.common import audit_view, db, redirect, render, screen, upload_name

router = APIRouter(dependencies=[CSRF], include_in_schema=False)

UPLOAD_LIMIT = pfif.MAX_FILE_BYTES
ONLY = {"": "すべて", "linked": "候補あり", "open": "候補なし"}
DONE_JA = {"confirmed": "同一人物として確定しました", "rejected": "別人としました", "undo": "判定を取り消しました",
           "relink": "照合をやり直しました"}
SEX_JA = {"female": "女", "male": "男", "other": "その他"}


def _page(request: Request, session: Session, user: CurrentUser, ctx: dict[str, Any] | None = None, *,
          q: str = "", only: str = "", status_code: int = 200) -> HTMLResponse:
    only = only if only in ONLY else ""
    views = pfif.sought_overview(session, reveal_restricted=user.can("restricted"), q=q, only=only)
    subjects = [f"sought:{v.person.id}" for v in views]
    subjects += [f"{lv.link.target_kind}:{lv.link.target_id}" for v in views for lv in (*v.links, *v.decided)]
    audit_view(session, request, user, "search" if q.strip() else "view", subjects=subjects,
               detail={"q": q.strip(), "only": only, "count": len(views)})
    session.commit()
    return render(request, "sought.html", {"views": views, "q": q, "only": only, "only_choices": ONLY,
                                           "sex_ja": SEX_JA, **(ctx or {})}, status_code=status_code)


@router.get("/desk/sought", response_class=HTMLResponse)
def sought_page(request: Request, q: str = "", only: str = "", done: str = "",
                user: CurrentUser = Depends(require("sought")), session: Session = Depends(db)) -> HTMLResponse:
    return _page(request, session, user, {"done": DONE_JA.get(done, "")}, q=q, only=only)


@router.post("/desk/sought/import", response_class=HTMLResponse)
def sought_import(request: Request, file: UploadFile = File(...), user: CurrentUser = Depends(require("sought")),
                  session: Session = Depends(db)) -> HTMLResponse:
    name = upload_name(file.filename, "pfif.xml")
    ctx: dict[str, Any] = {"file_name": name}
    with tempfile.TemporaryDirectory(prefix="anpi-pfif-") as tmp:
        path = Path(tmp) / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        if path.stat().st_size > UPLOAD_LIMIT:
            ctx["error"] = "ファイルが大きすぎます (100MBまで)"
            return _page(request, session, user, ctx, status_code=413)
        try:
            ctx["result"] = pfif.import_pfif(session, path, by_user=user, screen=screen(request),
                                             reveal_restricted=user.can("restricted"))
        except FileFormatError as exc:
            session.rollback()
            ctx["error"] = "ファイルを読み取れません。何も取り込んでいません。"
            ctx["problems"] = [p.ja() for p in exc.problems]
            return _page(request, session, user, ctx, status_code=422)
        except AnpiError as exc:
            session.rollback()
            ctx["error"] = exc.message_ja
            return _page(request, session, user, ctx, status_code=422)
    return _page(request, session, user, ctx)


@router.post("/desk/sought/relink", response_class=HTMLResponse)
def sought_relink(request: Request, user: CurrentUser = Depends(require("sought")),
                  session: Session = Depends(db)) -> Response:
    pfif.relink_all(session, by_user=user, screen=screen(request))
    return redirect("/desk/sought?done=relink")


@router.post("/desk/sought/{sought_id}/decide", response_class=HTMLResponse)
def sought_decide(request: Request, sought_id: str, kind: str = Form(""), target_id: str = Form(""),
                  decision: str = Form(""), user: CurrentUser = Depends(require("sought")),
                  session: Session = Depends(db)) -> Response:
    try:
        pfif.decide_link(session, sought_id, kind, target_id, decision, by_user=user,
                         reveal_restricted=user.can("restricted"), screen=screen(request))
        session.commit()
    except AnpiError as exc:
        session.rollback()
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, (Conflict, AlreadyDone)) else 422
        return _page(request, session, user, {"error": exc.message_ja}, status_code=status)
    return redirect(f"/desk/sought?done={decision}#sought-{sought_id}")
