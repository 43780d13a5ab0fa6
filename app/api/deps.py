"""Per-request dependencies: the request's database session and engines.

The translation of errors into HTTP answers is `app.api.errors` (it renders the HTML error page
through `app.web.common`, which uses these dependencies: kept apart so neither imports the other
back).
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlmodel import Session

from app.audit_models import AuditEntry
from app.db import ReadFirstSession


def request_session(request: Request) -> Session:
    """A GET only looks: its reads go to the query-only pool (never behind a write) and only its
    audit entry to the writer. Anything else uses the writer throughout, so a read-then-write
    (duplicate check, next audit entry) sees the state it writes into."""
    state = request.app.state
    reader = getattr(state, "read_engine", None)
    if reader is not None and request.method in ("GET", "HEAD"):
        return ReadFirstSession(reader, state.engine, {AuditEntry: state.engine}, expire_on_commit=False)
    return Session(state.engine, expire_on_commit=False)


def read_engine(request: Request):  # type: ignore[no-untyped-def]
    """The query-only engine (the writer for apps without one, such as a test's bare app)."""
    return getattr(request.app.state, "read_engine", None) or request.app.state.engine


def get_session(request: Request) -> Iterator[Session]:
    with request_session(request) as s:
        yield s
