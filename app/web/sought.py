"""PFIF imports: sought persons and their reversible links. Owner: PFIF work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
