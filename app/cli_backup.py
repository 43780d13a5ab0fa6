"""`anpi backup --out FILE`, `anpi restore FILE` (DESIGN §2). Owner: backup work."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `anpi` app."""
