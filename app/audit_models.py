"""The audit log table: append-only and hash-chained (who looked at whom, who decided what).

Why a chain: the 2011 leak showed that "who looked?" must be answerable after the fact, and that
an answer nobody can trust is worthless. Each entry stores the SHA-256 of the previous entry and
its own hash over its content, so changing or deleting any row breaks the chain from there on
(`anpi audit verify`). `prev_hash` is unique, so two writers can never fork the chain.

Kept in its own module so the Alembic migration can import it beside `app.models`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from app.ids import utcnow


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"

    id: int = Field(primary_key=True)  # 1, 2, 3 … assigned by the writer (part of the hash)
    at: datetime = Field(default_factory=utcnow, index=True)
    user_id: str = Field(default="", index=True)
    user_name: str = ""
    role: str = ""
    action: str = Field(index=True)  # view, search, register, decide, check_out, export, login …
    screen: str = ""  # the screen or API route, e.g. "GET /roster/{id}"
    subjects: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # canonical JSON list
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # canonical JSON object
    prev_hash: str = Field(unique=True)
    hash: str = Field(unique=True)
