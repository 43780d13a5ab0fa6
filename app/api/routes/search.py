"""`GET /api/search`: registry candidates for the person at the desk (the intake screen calls it as you type)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.api.deps import read_engine
from app.services import audit
from app.services.evacuees import grade_candidates, registrations_of

router = APIRouter(prefix="/api", tags=["search"], dependencies=[CSRF])


@router.get("/search")
def search(request: Request, name: str = "", kana: str = "", birth: str = "", sex: str = "", address: str = "",
           limit: int = Query(5, ge=1, le=20), user: CurrentUser = Depends(require("search"))) -> dict[str, Any]:
    """Top candidates with reasons; 閲覧制限 residents' address is hidden unless the role is hq/admin.

    Every call is audited with the search text and the 宛名番号 shown.
    """
    from app.services.search import match_one

    query = {k: v for k, v in {"name": name, "kana": kana, "birth": birth, "sex": sex, "address": address}.items() if v}
    if not (name.strip() or kana.strip()):
        result: dict[str, Any] = {"decision": "none", "resident_id": None, "probability": 0.0, "reasons": "",
                                  "candidates": []}
    else:
        # match_one opens its own connections: no session of ours may be open while it runs
        result = match_one(read_engine(request), name=name, kana=kana, birth=birth, sex=sex, address=address,
                           limit=limit, reveal_restricted=user.can("restricted"))
    result["tied"] = grade_candidates(result["candidates"])
    with Session(request.app.state.engine) as s:
        # a candidate someone is already registered as: shown before a second record is made
        known = registrations_of(s, [str(c["resident_id"]) for c in result["candidates"]])
        for c in result["candidates"]:
            c["registered"] = known.get(str(c["resident_id"]), [])
        audit.record(s, user, "search", "GET /api/search",
                     subjects=[f"resident:{c['resident_id']}" for c in result["candidates"]], detail={"query": query})
        s.commit()
    return result


@router.get("/check-birth")
def check_birth(value: str = "", user: CurrentUser = Depends(require("register"))) -> dict[str, Any]:
    """A date of birth as the intake form's field is left: the same rule the server applies on
    submit (the final check), so the message a volunteer sees while typing is the one it keeps."""
    from datetime import date

    from app.services.roster import check_birth as check
    from matching.dates import DateError, era_of

    if not value.strip():
        return {"ok": True, "label": ""}
    try:
        pd = check(value, date.today())
    except DateError as exc:
        return {"ok": False, "message_ja": f"生年月日: {exc.ja}"}
    if pd.value is not None:
        era = era_of(pd.value)
        wareki = f"（{era.name}{pd.value.year - era.start.year + 1}年）" if era else ""
        return {"ok": True, "label": f"{pd.value.year}年{pd.value.month}月{pd.value.day}日{wareki}"}
    if pd.kind in ("age", "year") and pd.year_min:
        return {"ok": True, "label": f"{pd.year_min}〜{pd.year_max}年生まれ" if pd.year_min != pd.year_max else f"{pd.year_min}年生まれ"}
    return {"ok": True, "label": "不詳"}
