"""The one error → HTTP mapping of every route, shelter and hub (ARCHITECTURE.md §8).

Each exception class says how it is answered (``status`` and ``code`` class attributes on
``sync.errors.SyncError`` and ``app.services.errors.AnpiError``); this module turns any of them
into the one JSON shape::

    {"error": code, "detail": English, "detail_ja"?: Japanese for staff, "field"?: the field at fault,
     … extra keys a class adds (limit_bytes, problems, reason, …)}

It lives in ``sync/`` (not ``app/``) because both the hub's own routes (``sync.hub``) and the
shelter's faces (``app.api``) answer through it and ``sync`` never imports ``app``; it imports no web
framework, so it is plain data in, plain data out — the faces wrap it in their response class.
Statuses, chosen once: 400 malformed request (unreadable JSON, a body or query outside its schema),
401 not authenticated, 403 not allowed, 404 not found, 409 conflict with the current state, 413 too
large, 422 a readable request whose content is invalid (a field's value, a file's rows), 503 busy or
unavailable (Retry-After), 507 disk full.
"""
from __future__ import annotations

from typing import Any

#: exceptions of the language/validation libraries that mean "the request was malformed"
MALFORMED = (ValueError, KeyError, TypeError)


def answerable(exc: BaseException) -> bool:
    """True for an error a face answers with :func:`error_answer` (not a bug: no 500)."""
    return isinstance(exc, MALFORMED) or (isinstance(getattr(exc, "code", None), str)
                                          and isinstance(getattr(exc, "status", None), int))


def error_answer(exc: BaseException) -> tuple[dict[str, Any], int]:
    """(JSON body, HTTP status) for ``exc`` — the one shape of every error answer."""
    code = getattr(exc, "code", None)
    status = getattr(exc, "status", None)
    if not isinstance(code, str) or not isinstance(status, int):
        return {"error": "bad_request", "detail": _text(exc)}, 400
    detail = getattr(exc, "public_detail", None)
    body: dict[str, Any] = {"error": code, "detail": _text(exc) if detail is None else detail}
    message_ja = getattr(exc, "message_ja", "")
    if message_ja:
        body["detail_ja"] = message_ja
    field = getattr(exc, "field", "")
    if field:
        body["field"] = field
    extra = getattr(exc, "extra", None)
    if extra:
        body.update(extra)
    return body, status


def retry_after(exc: BaseException) -> int | None:
    """Seconds for the ``Retry-After`` header of a 503/507 answer (None: no header)."""
    value = getattr(exc, "retry_after", None)
    return value if isinstance(value, int) else None


def _text(exc: BaseException) -> str:
    return str(exc)
