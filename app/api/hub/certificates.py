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

Bad input answers 422 ``{"error": "invalid_input", "field", "detail", "detail_ja"}``; a number of
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
from sqlalchemy.engine import Engine

from app import hub_certificates as hc
from app.api.hub import json_object
from app.formats.fonts import FontMissing
from app.services.errors import AnpiError, Conflict, Forbidden, InvalidInput, NotFound
from sync.hub.hq import HqCaller

_STATUS = ((InvalidInput, 422, "invalid_input"), (NotFound, 404, "not_found"), (Forbidden, 403, "forbidden"),
           (Conflict, 409, "conflict"))


def error_answer(exc: AnpiError) -> JSONResponse:
    """Our service errors as JSON; the field is named for bad input (English and Japanese)."""
    code, kind = 400, "bad_request"
    for cls, c, k in _STATUS:
        if isinstance(exc, cls):
            code, kind = c, k
            break
    body: dict[str, Any] = {"error": kind, "detail": str(exc), "detail_ja": exc.message_ja}
    if isinstance(exc, InvalidInput):
        body["field"] = exc.field
    return JSONResponse(body, status_code=code)


def _flag(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false", f"{name} は true か false で指定してください", name)
    return value


def _str(body: dict[str, Any], name: str) -> Any:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", f"{name} は文字で指定してください", name)
    return value


def _issue(engine: Engine, data_key: Callable[[], Any], u: Any, b: dict[str, Any]) -> hc.HubCertificate:
    """POST /v1/hq/certificates: the manual path ("manual": true, the household as declared) or the
    registry path (resident_id); a field of the other path is refused, naming it."""
    m = u.municipality_code
    if _flag(b, "manual"):
        if b.get("resident_id"):
            raise InvalidInput("manual and resident_id exclude each other", "手動発行では宛名番号を指定しません",
                               "resident_id")
        cert = hc.issue_manual(engine, m, kind=_str(b, "kind") or "risai", cause=_str(b, "cause"),
                               name=_str(b, "name"), address=_str(b, "address"), damage=_str(b, "damage"),
                               location=_str(b, "location"), members=hc.parse_members(b.get("members")),
                               note=_str(b, "note"), by=u)
    else:
        for extra in ("name", "address", "members", "note"):
            if b.get(extra):
                raise InvalidInput(f"{extra} belongs to the manual path (\"manual\": true)",
                                   "氏名・住所・世帯構成員・備考は手動発行のときだけ指定します", extra)
        cert = hc.issue(engine, data_key(), m, resident_id=_str(b, "resident_id"),
                        kind=_str(b, "kind") or "risai", cause=_str(b, "cause"), damage=_str(b, "damage"),
                        location=_str(b, "location"), in_person=_flag(b, "in_person"),
                        identity_note=_str(b, "id_note"),
                        include_members=_flag(b, "include_members", True), by=u,
                        allow_restricted=u.can("hq"))
    return cert


def router(engine: Engine, caller: HqCaller, data_key: Callable[[], Any]) -> APIRouter:
    r = APIRouter()

    async def call(request: Request, fn: Callable[[Any], Any], status_code: int = 200) -> Any:
        def guarded(user: Any) -> Any:
            try:
                out = fn(user)
            except AnpiError as exc:
                return error_answer(exc)
            except FontMissing as exc:  # the hub cannot write PDFs until the font is installed
                return JSONResponse({"error": "font_missing", "detail": str(exc),
                                     "detail_ja": "日本語フォントが見つからないため、PDFを作成できません"}, status_code=503)
            return out if isinstance(out, Response) else JSONResponse(out, status_code=status_code)
        return await caller.call(request, guarded, perm="desk")

    def view(user: Any, cert: hc.HubCertificate, history: bool = False) -> dict[str, Any]:
        return cert.as_dict(reveal_restricted=user.can("hq"), with_history=history)

    @r.post("/v1/hq/certificates")
    async def issue(request: Request) -> Response:
        raw = await request.body()

        def fn(u: Any) -> dict[str, Any]:
            cert = _issue(engine, data_key, u, json_object(raw))
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
            b = json_object(raw)
            cert = hc.reissue(engine, data_key(), u.municipality_code, number, reason=_str(b, "reason"), by=u,
                              allow_restricted=u.can("hq"))
            return view(u, cert, history=True)
        return await call(request, fn)

    @r.post("/v1/hq/certificates/{number}/void")
    async def void(request: Request, number: str) -> Response:
        raw = await request.body()

        def fn(u: Any) -> dict[str, Any]:
            b = json_object(raw)
            cert = hc.void(engine, data_key(), u.municipality_code, number, _str(b, "reason"), by=u)
            return view(u, cert, history=True)
        return await call(request, fn)

    return r
