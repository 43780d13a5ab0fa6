"""The small exception hierarchy services raise; faces turn them into HTTP answers or CLI lines.

Each class says once how HTTP answers it (``status``, and ``code``: the ``"error"`` token), read by
the one mapping ``sync.http_errors.error_answer`` (shelter and hub alike; ARCHITECTURE.md §8).
"""

from __future__ import annotations

from app.formats.errors import FileFormatError, RowProblem

__all__ = ["AnpiError", "NotFound", "InvalidInput", "AlreadyDone", "Forbidden", "Conflict", "Malformed",
           "Unauthorized", "TooLarge", "Busy", "DiskFull", "Unavailable", "FileFormatError", "RowProblem"]


class AnpiError(Exception):
    """Base of every error a service raises on purpose. `message_ja` is for the staff UI."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, message_ja: str = "") -> None:
        super().__init__(message)
        self.message_ja = message_ja or message


class NotFound(AnpiError):
    status = 404
    code = "not_found"


class InvalidInput(AnpiError):
    """Bad input from a person; `field` names the form field or column when there is one."""

    status = 422
    code = "invalid_input"

    def __init__(self, message: str, message_ja: str = "", field: str = "") -> None:
        super().__init__(message, message_ja)
        self.field = field


class Malformed(AnpiError):
    """The request itself cannot be read (not JSON, a body or query outside its schema)."""

    status = 400
    code = "bad_request"


class AlreadyDone(AnpiError):
    """The same thing was done before (same file imported twice); nothing changed."""

    status = 409
    code = "already_done"


class Unauthorized(AnpiError):
    status = 401
    code = "unauthenticated"


class Forbidden(AnpiError):
    status = 403
    code = "forbidden"


class Conflict(AnpiError):
    status = 409
    code = "conflict"


class TooLarge(AnpiError):
    """A request body over its limit (refused while it streams in: nothing stored)."""

    status = 413
    code = "too_large"

    def __init__(self, message: str, message_ja: str = "", limit_bytes: int = 0) -> None:
        super().__init__(message, message_ja)
        self.extra = {"limit_bytes": limit_bytes}


class Unavailable(AnpiError):
    """Cannot be done right now (a missing font, a key not configured); retrying later may work."""

    status = 503
    code = "unavailable"
    retry_after: int | None = None


class Busy(Unavailable):
    """The database is busy with another write; nothing was saved."""

    code = "busy"
    retry_after = 5


class DiskFull(AnpiError):
    """No space left on the disk; nothing was saved."""

    status = 507
    code = "disk_full"
    retry_after = 60
