"""`/api/inquiries`: the 安否照会 desk as JSON — answer an inquiry, and the log for HQ.

The answer never carries the real outcome: "not found", "refused" and "protected" all come back
as the same empty item list and the same text (see `app.services.inquiry`). Only the log
(`GET /api/inquiries`, HQ and admin) says why.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.api.deps import get_session
from app.models import Inquiry
from app.services import audit, inquiry

router = APIRouter(prefix="/api", tags=["inquiry"], dependencies=[CSRF])


def _screen(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


class InquiryIn(BaseModel):
    inquirer_name: str
    inquirer_address: str
    inquirer_phone: str = ""
    id_proof: str  # 運転免許証 | マイナンバーカード | 健康保険証 | その他
    id_proof_note: str = ""
    relationship: str  # 同居の親族 | その他の親族・職場 | 知人 | その他
    purpose: str = ""
    sought_name: str = ""
    sought_kana: str = ""
    sought_birth: str = ""
    sought_address: str = ""
    give_up: bool = False


@router.post("/inquiries")
def answer(request: Request, body: InquiryIn, user: CurrentUser = Depends(require("inquiry")),
           session: Session = Depends(get_session)) -> dict[str, Any]:
    """Answer one inquiry. `needs_detail` true: nothing was answered, ask the inquirer for more detail."""
    result = inquiry.answer_inquiry(session, inquiry.InquiryRequest(**body.model_dump()), user=user,
                                    screen=_screen(request))
    session.commit()
    inq = result.inquiry
    if inq is None:
        return {"id": None, "needs_detail": True, "items": [], "answer_text": ""}
    return {"id": inq.id, "needs_detail": False, "items": inq.items_disclosed, "answer_text": inq.answer_text}


def _log_row(r: Inquiry) -> dict[str, Any]:
    return {"id": r.id, "at": r.at.isoformat(), "by_user": r.by_user, "inquirer_name": r.inquirer_name,
            "inquirer_address": r.inquirer_address, "inquirer_phone": r.inquirer_phone, "id_proof": r.id_proof,
            "id_proof_note": r.id_proof_note, "relationship": r.relationship, "purpose": r.purpose,
            "sought": {"name": r.sought_name, "kana": r.sought_kana, "birth": r.sought_birth,
                       "address": r.sought_address},
            "evacuee_id": r.evacuee_id, "outcome": r.outcome, "items": [i["no"] for i in r.items_disclosed],
            "answer_text": r.answer_text}


@router.get("/inquiries")
def log(request: Request, outcome: str = "", limit: int = 500, user: CurrentUser = Depends(require("hq.list")),
        session: Session = Depends(get_session)) -> dict[str, Any]:
    """The inquiry log, newest first, with the real outcome (for HQ and auditors)."""
    rows = inquiry.list_inquiries(session, outcome=outcome, limit=max(1, min(limit, 5000)))
    audit.record(session, user, "view", _screen(request),
                 [f"inquiry:{r.id}" for r in rows] + [f"evacuee:{r.evacuee_id}" for r in rows if r.evacuee_id],
                 {"outcome": outcome, "count": len(rows)})
    session.commit()
    return {"inquiries": [_log_row(r) for r in rows]}
