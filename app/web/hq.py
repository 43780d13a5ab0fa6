"""安否確認 (HQ safety-confirmation list, counts per 町字, HQ confirmations, exports). Owner: HQ-list work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
