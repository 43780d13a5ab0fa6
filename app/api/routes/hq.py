"""`/api/hq/…`: the 安否確認 list and its counts as JSON, and HQ records.

Same rules as the HQ screen: 閲覧制限 people appear only for roles holding "restricted" (marked
`"restricted": true`); for anyone else they are left out and only counted. Every list answer is
audited with the residents it returned.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.api.deps import get_session
from app.services import anpi_list as al
from app.services import audit

router = APIRouter(prefix="/api/hq", tags=["hq"], dependencies=[CSRF])


def _screen(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def row_dict(r: al.AnpiRow) -> dict[str, Any]:
    return {
        "resident_id": r.resident_id, "household_id": r.household_id, "relationship": r.relationship,
        "name": r.name, "kana": r.kana, "birth_date": _iso(r.birth_date), "birth_raw": r.birth_raw, "age": r.age,
        "sex": r.sex, "address": r.address, "town": r.town, "status": r.status, "status_ja": r.status_ja,
        "shelter": r.shelter, "since": _iso(r.since), "left_at": _iso(r.left_at), "destination": r.destination,
        "from_other_shelter": r.remote,
        "hq": ({"method": r.hq_method, "by_user": r.hq_by, "at": _iso(r.hq_at), "note": r.hq_note}
               if r.hq_at is not None else None),
        "care": list(r.care), "restricted": r.restricted, "detail": r.detail,
    }


def _counts(lst: al.AnpiList) -> dict[str, Any]:
    return {"snapshot": {"id": lst.snapshot_id, "as_of": _iso(lst.as_of), "residents": lst.total_residents},
            "total": len(lst.rows), "counts": lst.counts, "restricted_excluded": lst.restricted_excluded,
            "towns": lst.town_progress(), "filters": lst.filters.as_dict()}


def _filters(town: list[str] | None, household: str, age_band: str, care_only: bool, status: str) -> al.AnpiFilter:
    return al.AnpiFilter(towns=tuple(t for t in (town or []) if t.strip()), household=household.strip(),
                         age_band=age_band.strip(), care_only=care_only, status=status.strip())


@router.get("/list")
def hq_list(request: Request, town: list[str] | None = Query(None), household: str = "", age_band: str = "",
            care_only: bool = False, status: str = "", page: int = 1, per_page: int = 100,
            user: CurrentUser = Depends(require("hq.list")), session: Session = Depends(get_session)) -> dict[str, Any]:
    """One page of the list (町字, house number, household, 続柄 order) with the counts of the whole filtered list."""
    lst = al.build_anpi_list(session, filters=_filters(town, household, age_band, care_only, status),
                             include_restricted=user.can("restricted"))
    rows, page, pages = lst.page(page, max(1, min(per_page, 1000)))
    audit.record(session, user, "view", _screen(request), [f"resident:{r.resident_id}" for r in rows],
                 {"list": "anpi-list", "filters": lst.filters.as_dict(), "page": page, "rows": len(rows)})
    session.commit()
    return {**_counts(lst), "page": page, "pages": pages, "per_page": per_page,
            "rows": [row_dict(r) for r in rows]}


@router.get("/counts")
def hq_counts(town: list[str] | None = Query(None), household: str = "", age_band: str = "", care_only: bool = False,
              status: str = "", user: CurrentUser = Depends(require("hq.list")),
              session: Session = Depends(get_session)) -> dict[str, Any]:
    """Counts per status and per 町字 (confirmed / dead or missing / unconfirmed): numbers only, no person."""
    lst = al.build_anpi_list(session, filters=_filters(town, household, age_band, care_only, status),
                             include_restricted=user.can("restricted"))
    return _counts(lst)


class ConfirmationIn(BaseModel):
    resident_id: str
    status: str
    method: str = ""
    note: str = ""


@router.post("/confirmations", status_code=201)
def hq_confirm(body: ConfirmationIn, request: Request, user: CurrentUser = Depends(require("hq.confirm")),
               session: Session = Depends(get_session)) -> JSONResponse:
    """Record 他の手段で確認 / 死亡 / 行方不明, or withdraw the previous record (audited)."""
    rec = al.record_hq_confirmation(session, body.resident_id, body.status, body.method, body.note, user,
                                    screen=_screen(request))
    session.commit()
    return JSONResponse({"id": rec.id, "resident_id": rec.resident_id, "status": rec.status, "method": rec.method,
                         "note": rec.note, "by_user": rec.by_user, "at": _iso(rec.at)}, status_code=201)
