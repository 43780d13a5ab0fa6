"""`anpi export anpi-list …` (DESIGN §2). Owner: HQ-list work."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `anpi` app."""
