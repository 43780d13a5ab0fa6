"""安否照会 desk (inquirer, consent-driven answer, log). Owner: inquiry-desk work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
