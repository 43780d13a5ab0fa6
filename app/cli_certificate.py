"""`anpi certificate issue|list|reissue|void` (DESIGN §2). Owner: certificate work."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `anpi` app."""
