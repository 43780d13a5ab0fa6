"""り災証明書 / 被災証明書 desk screens. Owner: certificate work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
