"""The hub as `anpi hub serve` runs it: sync's hub (ingest, feed, HQ views) plus the desks.

`sync.hub.server.create_hub_app` holds everything that needs only the hub's own tables. The
desks — HQ records and exports, the 安否照会 desk, PFIF, disaster certificates — reuse the
shelter's rules and writers from `app/` (the consent matrix, the PDF and PFIF writers), and
`sync/` never imports `app/` (ARCHITECTURE.md §8), so their routes are added here, one router per desk
(`app/api/hub/*`), each a thin face over a plain-function module `app/hub_*.py` that the CLI
(`anpi hub …`) calls too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from sync.hub.hq import HqCaller
from sync.hub.server import create_hub_app

FACTORY = "app.hub_app:app_from_env"


def create_app(database_url: str, **kwargs: Any) -> FastAPI:
    """The hub app with the desks' routes (same arguments as `create_hub_app`)."""
    from app.api.hub import certificates, hq_desk, inquiry, pfif
    from app.web import hub_desk_pages, hub_pages

    hub = create_hub_app(database_url, **kwargs)
    engine = hub.state.engine
    caller = HqCaller(engine)

    def data_key() -> Any:
        return hub.state.data_key

    for module in (hq_desk, inquiry, certificates, pfif, hub_pages, hub_desk_pages):
        hub.include_router(module.router(engine, caller, data_key))
    _limit_bodies(hub)
    return hub


def _limit_bodies(hub: FastAPI) -> None:
    """Every body the hub receives has a limit, checked while it streams in (app.api.body_limit):
    a laptop's push batch, a PFIF import, and small JSON everywhere else (HQ, desks, enrolment)."""
    from fastapi.responses import JSONResponse

    from app.api.body_limit import BodyLimitMiddleware, message_en, message_ja
    from app.config import Settings
    from app.services.errors import TooLarge
    from sync.http_errors import error_answer

    st = Settings.from_env()

    async def too_large(scope: Any, limit: int) -> JSONResponse:
        body, status = error_answer(TooLarge(message_en(limit), message_ja(limit), limit))
        return JSONResponse(body, status_code=status)

    rules = [("/v1/push", st.hub_push_max_bytes), ("/v1/hq/pfif/import", st.pfif_upload_max_bytes)]
    hub.add_middleware(BodyLimitMiddleware, rules=rules, default=st.hub_body_max_bytes, too_large=too_large)


def app_from_env() -> FastAPI:
    """Factory for uvicorn (also multi-worker): reads `ANPI_HUB_DATABASE_URL`."""
    from sync.settings import SyncSettings

    url = SyncSettings.from_env().hub_database_url
    if not url:
        raise SystemExit("ANPI_HUB_DATABASE_URL is not set")
    return create_app(url)


def serve(database_url: str, *, host: str = "127.0.0.1", port: int = 8090, workers: int = 1,
          log_level: str = "info") -> None:
    from sync.hub.server import serve as serve_hub

    serve_hub(database_url, host=host, port=port, workers=workers, log_level=log_level, factory=FACTORY)
