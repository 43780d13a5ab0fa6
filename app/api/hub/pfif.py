"""PFIF (Google Person Finder) at the hub: thin JSON faces over `app.hub_pfif`.

Routes (``Authorization: Bearer <token>`` of a hub user; everything is the caller's municipality):

- ``POST /v1/hq/pfif/import?name=FILE&csv_domain=…``  body = the PFIF XML or Person Finder CSV
  file's bytes (perm desk) → the import's counts (``linked_auto`` / ``linked_review`` count only
  links the caller may see: 閲覧制限 targets only for an admin); a file we refuse stores nothing and
  answers 422 with every problem (file, line, field)
- ``GET  /v1/hq/pfif/sought?q=…&only=linked|open&include_expired=1``  sought people with their
  current links (perm desk; audited as a look at personal data). 閲覧制限 residents and withheld
  evacuees are never link targets here except for an admin
- ``POST /v1/hq/pfif/sought/{sought_id}/links``  ``{"target_kind": "resident"|"evacuee",
  "target_id": …, "decision": "confirmed"|"rejected"|"undo"}`` (perm desk; audited)
- ``GET  /v1/hq/pfif/export?expiry_days=N``  PFIF 1.4 of the evacuees who consented to
  publication (⑭), never 閲覧制限 (perm hq; audited ``export.pfif``)

Errors come back in the one shape of every route (``sync.http_errors``, through ``HqCaller``): a
refused file 422 ``bad_file`` with ``total`` and every problem (file, line, field); a file over the
limit 413 ``too_large``; a bad value or body 400 ``bad_request`` whose detail starts with the field;
an unknown link 404 ``not_found`` (another municipality's ids answer exactly like ids that do not
exist); a decision the link's state refuses 409 (``conflict``, or ``already_done`` for the same
decision twice).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine

from app import hub_pfif
from app.services.errors import InvalidInput, Malformed
from sync.hub.bodies import Body, parse
from sync.hub.hq import HqCaller
from sync.hub.tenants import HqUser

XML = "application/xml; charset=utf-8"


class LinkDecision(Body):
    """``POST /v1/hq/pfif/sought/{sought_id}/links`` (``kind``: the older name of ``target_kind``);
    the values are checked by ``pfif_desk.check_decision``."""

    target_kind: str | None = None
    kind: str | None = None
    target_id: str | None = None
    decision: str | None = None


@contextmanager
def bad_input_is_malformed() -> Iterator[None]:
    """This desk answers a bad value 400 naming its field, as it always has (``Malformed``)."""
    try:
        yield
    except InvalidInput as exc:
        raise Malformed(f"{exc.field}: {exc}" if exc.field else str(exc), exc.message_ja) from None


def _safe_name(name: str) -> str:
    base = re.split(r"[\\/]", name or "")[-1].strip()
    return base[:200] or "pfif.xml"


def router(engine: Engine, caller: HqCaller, data_key: Callable[[], Any]) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/hq/pfif/import")
    async def pfif_import(request: Request, name: str = "", csv_domain: str = "") -> Any:
        raw = await request.body()

        def fn(u: HqUser) -> Any:
            with bad_input_is_malformed():
                res = hub_pfif.import_pfif(engine, data_key(), u.municipality_code, raw, _safe_name(name),
                                           by=f"hq:{u.name}", csv_domain=csv_domain or None,
                                           reveal_restricted=u.role == "admin")
            return {**res.as_dict(), "sought_ids": res.sought_ids}
        return await caller.call(request, fn, perm="desk")

    @r.get("/v1/hq/pfif/sought")
    async def pfif_sought(request: Request, q: str = "", only: str = "", include_expired: bool = False,
                          limit: int = 500) -> Any:
        def fn(u: HqUser) -> dict[str, Any]:
            rows = hub_pfif.sought_list(engine, data_key(), u.municipality_code, reveal_restricted=u.role == "admin",
                                        q=q, only=only if only in ("linked", "open") else "",
                                        include_expired=include_expired, limit=max(1, min(limit, 5000)))
            return {"sought": rows, "count": len(rows)}
        return await caller.call(request, fn, perm="desk", personal=True)

    @r.post("/v1/hq/pfif/sought/{sought_id}/links")
    async def pfif_decide(request: Request, sought_id: str) -> Any:
        raw = await request.body()

        def fn(u: HqUser) -> Any:
            body = parse(LinkDecision, raw)
            with bad_input_is_malformed():
                return hub_pfif.decide_link(engine, data_key(), u.municipality_code, sought_id,
                                            body.target_kind or body.kind or "", body.target_id or "",
                                            body.decision or "", by=f"hq:{u.name}",
                                            reveal_restricted=u.role == "admin")
        return await caller.call(request, fn, perm="desk")

    @r.get("/v1/hq/pfif/export")
    async def pfif_export(request: Request, expiry_days: int | None = None) -> Any:
        def fn(u: HqUser) -> Any:
            if expiry_days is not None and expiry_days < 1:
                raise Malformed("expiry_days: must be at least 1", "有効期限の日数は1以上です")
            file = f"anpi-pfif-{u.municipality_code}.xml"
            res = hub_pfif.export_bytes(engine, data_key(), u.municipality_code, by=f"hq:{u.name}",
                                        expiry_days=expiry_days, file=file)
            return Response(res.data, media_type=XML, headers={
                "Content-Disposition": f'attachment; filename="{file}"', "X-Anpi-Persons": str(res.persons),
                "Cache-Control": "no-store"})
        return await caller.call(request, fn, perm="hq")

    return r
