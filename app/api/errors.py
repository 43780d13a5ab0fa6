"""Errors as HTTP answers for the shelter's app: JSON for /api/…, the Japanese error page for screens.

JSON routes answer in the one shape of `sync.http_errors.error_answer` (`{"error", "detail",
"detail_ja", "field"?, …}`, statuses chosen on the exception classes); HTML screens answer 401 with
a redirect to the 交代 screen and other errors with a Japanese error page.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from app.api.auth import AuthError, login_url
from app.db import db_trouble
from app.formats.errors import FileFormatError
from app.services.errors import AnpiError, Busy, DiskFull, TooLarge
from app.web.common import render
from sync.http_errors import error_answer, retry_after

#: what a database that cannot take a write right now answers. Nothing of the refused request was stored.
_TROUBLE = {
    "busy": Busy("the database is busy with another write; nothing was saved, try again shortly",
                 "混み合っています。しばらくしてからもう一度お試しください"),
    "disk_full": DiskFull("no space left on the disk; nothing was saved, and a look at personal data is "
                          "refused because its audit entry cannot be written",
                          "ディスクの空きがありません。この操作は保存されていません。管理者に連絡して、"
                          "不要なファイルを消して空きを作ってください"),
}


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def _html_error(request: Request, status: int, message_ja: str) -> Response:
    return render(request, "error.html", {"status": status, "message": message_ja}, status_code=status)


def error_response(request: Request, exc: Exception, **extra: Any) -> Response:
    """Any of our exceptions as the answer: JSON in the one shape (`sync.http_errors`) for the API,
    the Japanese error page for screens; Retry-After when the class gives one."""
    body, status = error_answer(exc)
    if is_api(request):
        response: Response = JSONResponse(body | extra, status_code=status)
    else:
        response = _html_error(request, status, body.get("detail_ja") or body["detail"])
    retry = retry_after(exc)
    if retry is not None:
        response.headers["Retry-After"] = str(retry)
    return response


def trouble_response(request: Request, trouble: str) -> Response:
    """503 (busy) or 507 (disk full) with Retry-After (`reason` kept beside `error` for old clients)."""
    return error_response(request, _TROUBLE[trouble], reason=trouble)


def install_error_handlers(app: FastAPI) -> None:
    async def _database_error(request: Request, exc: Exception) -> Response:
        trouble = db_trouble(exc)
        if trouble is None:
            raise exc  # a real bug: the server's 500, logged with its traceback
        return trouble_response(request, trouble)

    for cls in (SQLAlchemyError, sqlite3.Error, OSError):
        app.add_exception_handler(cls, _database_error)

    @app.exception_handler(AnpiError)
    async def _anpi_error(request: Request, exc: AnpiError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(FileFormatError)
    async def _file_error(_request: Request, exc: FileFormatError) -> JSONResponse:
        body, status = error_answer(exc)
        return JSONResponse(body | {"problems": [
            {"line": p.line, "field": p.field, "message": p.message, "message_ja": p.ja()} for p in exc.problems[:50]
        ]}, status_code=status)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        if is_api(request):
            return error_response(request, exc, reason=exc.reason)
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
        return error_response(request, TooLarge(message_en(limit), message_ja(limit), limit))  # type: ignore[arg-type]

    roster, registry, pfif = (settings.roster_upload_max_bytes, settings.registry_upload_max_bytes,
                              settings.pfif_upload_max_bytes)
    rules = [("/api/roster/import", roster), ("/roster/import", roster), ("/api/registry/import", registry),
             ("/admin/registry", registry), ("/desk/sought/import", pfif)]
    app.add_middleware(BodyLimitMiddleware, rules=rules, default=settings.form_max_bytes, too_large=too_large)
