"""Identifiers that leave the laptop are ULIDs: sortable by time and unique without a server."""

from __future__ import annotations

from datetime import datetime, timezone

from ulid import ULID


def new_id() -> str:
    return str(ULID())


def utcnow() -> datetime:
    """Aware UTC: laptops in different shelters must agree on what a stored time means."""
    return datetime.now(timezone.utc)
