"""The small exception hierarchy services raise; faces turn them into HTTP answers or CLI lines."""

from __future__ import annotations

from app.formats.errors import FileFormatError, RowProblem

__all__ = ["AnpiError", "NotFound", "InvalidInput", "AlreadyDone", "Forbidden", "Conflict",
           "FileFormatError", "RowProblem"]


class AnpiError(Exception):
    """Base of every error a service raises on purpose. `message_ja` is for the staff UI."""

    def __init__(self, message: str, message_ja: str = "") -> None:
        super().__init__(message)
        self.message_ja = message_ja or message


class NotFound(AnpiError):
    pass


class InvalidInput(AnpiError):
    """Bad input from a person; `field` names the form field or column when there is one."""

    def __init__(self, message: str, message_ja: str = "", field: str = "") -> None:
        super().__init__(message, message_ja)
        self.field = field


class AlreadyDone(AnpiError):
    """The same thing was done before (same file imported twice); nothing changed."""


class Forbidden(AnpiError):
    pass


class Conflict(AnpiError):
    pass
