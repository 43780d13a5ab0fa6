"""Identifiers that leave the laptop are ULIDs: sortable by time and unique without a server."""

from __future__ import annotations

from datetime import datetime, timezone

from ulid import ULID


def new_id() -> str:
    return str(ULID())


def aware(dt: datetime | None) -> datetime | None:
    """A stored time as aware UTC: SQLite (and JSON) hand times back naive, and they were stored as UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def utcnow() -> datetime:
    """Aware UTC: laptops in different shelters must agree on what a stored time means."""
    return datetime.now(timezone.utc)
