"""(to be written) `anpi hub …` commands of this desk."""

from __future__ import annotations

import typer


def register(hub_app: typer.Typer) -> None:
    """Add this desk's commands to `anpi hub`."""
