"""`anpi pfif import FILE` and friends: Person Finder interchange. Owner: PFIF work."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `anpi` app."""
