"""The shelter web service: FastAPI app factory used by `anpi serve`, `anpi demo` and tests."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from app import __version__
from app.api import errors as api_errors
from app.api.auth import SessionStore
from app.api.routes import admin as admin_api
from app.api.routes import evacuees as evacuees_api
from app.api.routes import inquiry as inquiry_api
from app.api.routes import hq as hq_api
from app.api.routes import health, search, session, status
from app.config import Settings
from app.db import open_shelter_db, read_engine
from app.services.login_throttle import LoginThrottle
from app.services.rate_limit import SlidingWindow
from app.web import admin, certificates, dashboard, devices, hq, inquiry, intake, review, roster, session_views, shelters_admin, sought
from app.web import self_queue, self_register
from app.web import cards as cards_web, noticeboard as noticeboard_web
from app.api import device_gate
from app.services.devices import PairingCodes
from app.services.lan_tls import LanInfo
from app.web.common import STATIC_DIR

# Everything the pages load comes from this server: no CDN, no web fonts, no outside host.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def create_app(db_path: str | Path, *, auto_lock_seconds: int | None = None, lan: LanInfo | None = None) -> FastAPI:
    """One app per shelter database; the engine lives on `app.state` for the request dependencies.

    `lan` (from `anpi serve --lan`, served over HTTPS only): devices other than the laptop itself
    must be paired first (app.api.device_gate)."""
    settings = Settings.from_env()
    engine = open_shelter_db(db_path, busy_timeout_s=settings.busy_timeout_seconds)
    # no /docs or /redoc: they load their script from a CDN, and a shelter has no internet
    api = FastAPI(title="Anpi shelter service", version=__version__, docs_url=None, redoc_url=None)
    api.state.engine = engine  # the one writer connection
    # GET pages and the logged-in user's lookup read here, so they never queue behind a write
    api.state.read_engine = read_engine(db_path, busy_timeout_s=settings.busy_timeout_seconds)
    api.state.db_path = Path(db_path)
    api.state.settings = settings
    api.state.sessions = SessionStore(auto_lock_seconds if auto_lock_seconds is not None else settings.auto_lock_seconds)
    api.state.jobs = {}
    api.state.login_throttle = LoginThrottle(
        max_failures=settings.max_pin_failures, lockout_seconds=settings.pin_lockout_seconds,
        client_max_failures=settings.client_max_pin_failures, client_window_seconds=settings.client_pin_window_seconds)
    # 本人記入 kiosk (/self): per client address, requests of any kind and forms sent
    api.state.self_requests = SlidingWindow(settings.self_max_requests, settings.self_window_seconds)
    api.state.self_entries = SlidingWindow(settings.self_max_entries, settings.self_window_seconds)
    api.state.lan = lan
    api.state.pairing = PairingCodes()
    api_errors.install_error_handlers(api)
    if lan is not None:  # inside the security headers below, so its answers carry them too
        device_gate.install(api)

    @api.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        path = request.url.path
        if not path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")  # the next user's Back button shows nothing
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    api.include_router(health.router)
    for r in (session.router, status.router, search.router, evacuees_api.router, admin_api.router, inquiry_api.router,
              hq_api.router):
        api.include_router(r)
    for r in (session_views.router, dashboard.router, intake.router, review.router, roster.router, admin.router,
              hq.router, inquiry.router, certificates.router, sought.router, shelters_admin.router, self_register.router,
              self_queue.router, cards_web.router, noticeboard_web.router, devices.router):
        api.include_router(r)
    api.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    api_errors.install_body_limits(api, settings)
    return api
