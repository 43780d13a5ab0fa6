"""(to be written) routes of this desk at the hub."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter
from sqlalchemy.engine import Engine

from sync.hub.hq import HqCaller


def router(engine: Engine, caller: HqCaller, data_key: Callable[[], Any]) -> APIRouter:
    return APIRouter()
