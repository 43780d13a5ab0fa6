"""`GET /api/search`: registry candidates for the person at the desk (the intake screen calls it as you type)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.api.deps import read_engine
from app.services import audit
from app.services.evacuees import reason_parts

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
    for c in result["candidates"]:
        c["reason_parts"] = reason_parts(str(c.get("reasons", "")))
    with Session(request.app.state.engine) as s:
        audit.record(s, user, "search", "GET /api/search",
                     subjects=[f"resident:{c['resident_id']}" for c in result["candidates"]], detail={"query": query})
        s.commit()
    return result
