"""Errors raised while reading files: each names the file, the line and the field.

They carry both an English and a Japanese message, because the CLI speaks English to municipal
IT and the staff UI speaks Japanese to volunteers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RowProblem:
    """One problem in one row of an input file."""

    file: str
    line: int  # 1-based physical line (CSV) or row (xlsx); 0 = the file as a whole
    field: str  # column as named in the file, or "" for the whole row
    message: str  # English
    message_ja: str = ""
    value: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" field {self.field!r}" if self.field else ""
        return f"{where}:{field} {self.message}"

    def ja(self) -> str:
        where = f"{self.file} {self.line}行目" if self.line else self.file
        field = f" 「{self.field}」" if self.field else ""
        return f"{where}{field}: {self.message_ja or self.message}"


class FileFormatError(Exception):
    """A file we cannot read at all, or one whose rows break the contract (registry: all or nothing)."""

    status = 422  # how the one HTTP mapping (sync.http_errors) answers a refused file
    code = "bad_file"

    def __init__(self, problems: list[RowProblem], total: int | None = None) -> None:
        self.problems = problems
        self.total = total if total is not None else len(problems)
        first = problems[0] if problems else None
        more = f" (and {self.total - 1} more problems)" if self.total > 1 else ""
        super().__init__(f"{first}{more}" if first else "unreadable file")

    @property
    def extra(self) -> dict[str, Any]:
        """The keys the one HTTP mapping adds to the answer: every problem (file, line, field) and the total."""
        return {"total": self.total, "problems": [
            {"file": p.file, "line": p.line, "field": p.field, "message": p.message, "message_ja": p.message_ja}
            for p in self.problems]}
