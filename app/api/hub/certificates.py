"""The hub's certificate desk as JSON routes (perm "desk": desk, hq and admin users).

- ``POST /v1/hq/certificates``                    issue: ``{"kind", "cause", "damage", "resident_id", "location",
  "in_person", "id_note", "include_members"}``, or the manual path ``{"manual": true, "name", "address",
  "members", "note", …}``; 201 with the certificate
- ``GET  /v1/hq/certificates``                    list (laptops' and the hub's): ``kind``, ``status``, ``resident``,
  ``q``, ``origin``, ``limit``
- ``GET  /v1/hq/certificates/{number}``           one, with its history
- ``GET  /v1/hq/certificates/{number}/pdf``       A4 PDF
- ``POST /v1/hq/certificates/{number}/reissue``   ``{"reason"}`` (optional)
- ``POST /v1/hq/certificates/{number}/void``      ``{"reason"}`` (required)

Errors answer in the one shape of every route (``sync.http_errors``, through ``HqCaller``): a body
that is not JSON or not of its model's shape (a flag that is not true/false, text that is not text)
answers 400 ``{"error": "bad_request", "field", "detail", "detail_ja"}``; a value the desk refuses
answers 422 ``{"error": "invalid_input", "field", "detail", "detail_ja"}``; a number of
another municipality answers 404 exactly like one that does not exist.  閲覧制限 households: only
hq/admin issue, reissue or print (403 for desk users); desk users see their address, location,
issuing shelter/device and identity note masked, and ``q`` never matches their address.  A PDF the
hub cannot draw for want of the Japanese font answers 503 ``{"error": "font_missing"}``.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import StrictBool
from sqlalchemy.engine import Engine

from app import hub_certificates as hc
from app.services.errors import InvalidInput
from sync.hub.bodies import Body, parse
from sync.hub.hq import HqCaller


class IssueBody(Body):
    """``POST /v1/hq/certificates``: the registry path (resident_id) or the manual one (``"manual": true``
    and the household as declared). Values are checked by ``hub_certificates`` (422 naming the field)."""

    manual: StrictBool = False
    resident_id: str | None = None
    kind: str | None = None
    cause: str | None = None
    damage: str | None = None
    location: str | None = None
    in_person: StrictBool = False
    id_note: str | None = None
    include_members: StrictBool = True
    name: str | None = None
    address: str | None = None
    members: Any = None  # a list of {name, relationship, birth_date} or lines of text (hc.parse_members)
    note: str | None = None


class ReasonBody(Body):
    """``POST …/reissue`` (reason optional) and ``…/void`` (reason required, checked by the desk)."""

    reason: str | None = None


def _issue(engine: Engine, data_key: Callable[[], Any], u: Any, b: IssueBody) -> hc.HubCertificate:
    """POST /v1/hq/certificates: the manual path ("manual": true, the household as declared) or the
    registry path (resident_id); a field of the other path is refused, naming it."""
    m = u.municipality_code
    if b.manual:
        if b.resident_id:
            raise InvalidInput("manual and resident_id exclude each other", "手動発行では宛名番号を指定しません",
                               "resident_id")
        return hc.issue_manual(engine, m, kind=b.kind or "risai", cause=b.cause or "", name=b.name or "",
                               address=b.address or "", damage=b.damage or "", location=b.location or "",
                               members=hc.parse_members(b.members), note=b.note or "", by=u)
    for extra in ("name", "address", "members", "note"):
        if getattr(b, extra):
            raise InvalidInput(f"{extra} belongs to the manual path (\"manual\": true)",
                               "氏名・住所・世帯構成員・備考は手動発行のときだけ指定します", extra)
    return hc.issue(engine, data_key(), m, resident_id=b.resident_id or "", kind=b.kind or "risai",
                    cause=b.cause or "", damage=b.damage or "", location=b.location or "", in_person=b.in_person,
                    identity_note=b.id_note or "", include_members=b.include_members, by=u,
                    allow_restricted=u.can("hq"))


def router(engine: Engine, caller: HqCaller, data_key: Callable[[], Any]) -> APIRouter:
    r = APIRouter()

    async def call(request: Request, fn: Callable[[Any], Any], status_code: int = 200) -> Any:
        def guarded(user: Any) -> Any:  # errors propagate to HqCaller's one mapping (sync.http_errors)
            out = fn(user)
            return out if isinstance(out, Response) else JSONResponse(out, status_code=status_code)
        return await caller.call(request, guarded, perm="desk")

    def view(user: Any, cert: hc.HubCertificate, history: bool = False) -> dict[str, Any]:
        return cert.as_dict(reveal_restricted=user.can("hq"), with_history=history)

    @r.post("/v1/hq/certificates")
    async def issue(request: Request) -> Response:
        raw = await request.body()

        def fn(u: Any) -> dict[str, Any]:
            cert = _issue(engine, data_key, u, parse(IssueBody, raw))
            return view(u, cert, history=True)
        return await call(request, fn, status_code=201)

    @r.get("/v1/hq/certificates")
    async def listing(request: Request, kind: str = "", status: str = "", resident: str = "", q: str = "",
                      origin: str = "", limit: int = 500) -> Response:
        def fn(u: Any) -> dict[str, Any]:
            rows = hc.list_certificates(engine, data_key(), u.municipality_code, kind=kind, status=status,
                                        resident=resident, q=q, origin=origin, limit=limit, by=u,
                                        reveal_restricted=u.can("hq"))
            return {"certificates": [view(u, c) for c in rows], "count": len(rows)}
        return await call(request, fn)

    @r.get("/v1/hq/certificates/{number}")
    async def one(request: Request, number: str) -> Response:
        return await call(request, lambda u: view(u, hc.get(engine, data_key(), u.municipality_code, number, by=u),
                                                  history=True))

    @r.get("/v1/hq/certificates/{number}/pdf")
    async def pdf(request: Request, number: str) -> Response:
        def fn(u: Any) -> Response:
            cert, data = hc.pdf(engine, data_key(), u.municipality_code, number, by=u, allow_restricted=u.can("hq"))
            return Response(data, media_type="application/pdf", headers={
                "Content-Disposition": f"attachment; filename=\"{quote(cert.number)}.pdf\"",
                "Cache-Control": "no-store"})
        return await call(request, fn)

    @r.post("/v1/hq/certificates/{number}/reissue")
    async def reissue(request: Request, number: str) -> Response:
        raw = await request.body()

        def fn(u: Any) -> dict[str, Any]:
            reason = parse(ReasonBody, raw).reason or ""
            cert = hc.reissue(engine, data_key(), u.municipality_code, number, reason=reason, by=u,
                              allow_restricted=u.can("hq"))
            return view(u, cert, history=True)
        return await call(request, fn)

    @r.post("/v1/hq/certificates/{number}/void")
    async def void(request: Request, number: str) -> Response:
        raw = await request.body()

        def fn(u: Any) -> dict[str, Any]:
            reason = parse(ReasonBody, raw).reason or ""
            cert = hc.void(engine, data_key(), u.municipality_code, number, reason, by=u)
            return view(u, cert, history=True)
        return await call(request, fn)

    return r
