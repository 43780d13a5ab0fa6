"""Per-request dependencies and the translation of service errors into HTTP answers.

JSON routes (/api/…) answer errors as JSON `{"detail", "detail_ja", "field"?}`; HTML screens answer
401 with a redirect to the 交代 screen and other errors with a Japanese error page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlmodel import Session

from app.api.auth import AuthError, login_url
from app.formats.errors import FileFormatError
from app.services.errors import AlreadyDone, AnpiError, Conflict, Forbidden, InvalidInput, NotFound

_STATUS = {NotFound: 404, InvalidInput: 422, Forbidden: 403, Conflict: 409, AlreadyDone: 409}


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as s:
        yield s


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def _html_error(request: Request, status: int, message_ja: str) -> Response:
    from app.web.common import render

    return render(request, "error.html", {"status": status, "message": message_ja}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AnpiError)
    async def _anpi_error(request: Request, exc: AnpiError) -> Response:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
        if not is_api(request):
            return _html_error(request, status, exc.message_ja)
        body = {"detail": str(exc), "detail_ja": exc.message_ja}
        if isinstance(exc, InvalidInput) and exc.field:
            body["field"] = exc.field
        return JSONResponse(body, status_code=status)

    @app.exception_handler(FileFormatError)
    async def _file_error(_request: Request, exc: FileFormatError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "problems": [
            {"line": p.line, "field": p.field, "message": p.message, "message_ja": p.ja()} for p in exc.problems[:50]
        ]}, status_code=422)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        if is_api(request):
            return JSONResponse({"detail": str(exc), "detail_ja": exc.message_ja, "reason": exc.reason},
                                status_code=exc.status)
        if exc.status == 401:
            next_path = request.url.path if request.method == "GET" else ""
            if next_path and request.url.query:
                next_path += "?" + request.url.query
            return RedirectResponse(login_url(next_path), status_code=303)
        return _html_error(request, exc.status, exc.message_ja)


def install_body_limits(app: FastAPI, settings: Any) -> None:
    """Body limits of the shelter (app.api.body_limit): uploads get theirs, every other route the form limit."""
    from starlette.requests import Request as StarletteRequest

    from app.api.body_limit import BodyLimitMiddleware, message_en, message_ja

    async def too_large(scope: Any, limit: int) -> Response:
        request = StarletteRequest(scope)
        if is_api(request):  # type: ignore[arg-type]
            return JSONResponse({"detail": message_en(limit), "detail_ja": message_ja(limit), "limit_bytes": limit},
                                status_code=413)
        return _html_error(request, 413, message_ja(limit))  # type: ignore[arg-type]

    roster, registry, pfif = (settings.roster_upload_max_bytes, settings.registry_upload_max_bytes,
                              settings.pfif_upload_max_bytes)
    rules = [("/api/roster/import", roster), ("/roster/import", roster), ("/api/registry/import", registry),
             ("/admin/registry", registry), ("/desk/sought/import", pfif)]
    app.add_middleware(BodyLimitMiddleware, rules=rules, default=settings.form_max_bytes, too_large=too_large)
