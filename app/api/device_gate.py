"""The LAN gate of `anpi serve --lan` (issue 15): a device on the shelter's Wi-Fi sees nothing but
the pairing page until it is paired; the laptop itself (its browser connects from 127.0.0.1 or
::1) needs no pairing.

"The laptop" is decided on the socket's peer address only (`scope["client"]`, uvicorn run with
proxy headers off, `app.services.devices.is_laptop`): a header such as X-Forwarded-For is never
believed. Left open to everyone: /pair (how to
join), /self (the self-registration kiosk, issue 15), /static (the pages' own CSS and script),
/healthz and /openapi.json (ARCHITECTURE.md §2). On the LAN every cookie is `Secure`.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.services import devices

DEVICE_COOKIE = "anpi_device"
DEVICE_MAX_AGE = 60 * 24 * 3600  # an evacuation lasts weeks; the laptop can revoke at any time
OPEN_PREFIXES = ("/pair/", "/self/", "/static/")
OPEN_PATHS = frozenset({"/pair", "/self", "/healthz", "/openapi.json", "/favicon.ico"})


def peer_is_laptop(request: Request) -> bool:
    return devices.is_laptop(request.client.host if request.client else None)


def _open_path(path: str) -> bool:
    """Open to unpaired devices; a path with dot segments (/self/../admin) never is."""
    if any(seg in (".", "..") for seg in path.split("/")) or "//" in path:
        return False
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def paired_device(request: Request):  # type: ignore[no-untyped-def]
    """The paired device behind this request's cookie (None: not paired, or revoked)."""
    engine = getattr(request.app.state, "read_engine", None) or request.app.state.engine
    with Session(engine) as s:
        return devices.device_for_token(s, request.cookies.get(DEVICE_COOKIE))


def _refuse(request: Request) -> Response:
    path = request.url.path
    if path == "/api" or path.startswith("/api/"):
        return JSONResponse({"detail": "this device is not paired with the shelter laptop",
                             "detail_ja": "この端末はまだ登録されていません。ノートパソコンに表示された接続コードで登録してください",
                             "reason": "device"}, status_code=401)
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/pair" + (f"?next={quote(target, safe='/')}" if request.method == "GET" else ""),
                            status_code=303)


def _secure_cookies(response: Response) -> None:
    raw = response.raw_headers
    for i, (k, v) in enumerate(raw):
        if k.lower() == b"set-cookie" and b"secure" not in v.lower():
            raw[i] = (k, v + b"; Secure")


def install(api: FastAPI) -> None:
    """Adds the gate; create_app calls it only for the LAN listener."""

    @api.middleware("http")
    async def device_gate(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        if not peer_is_laptop(request) and not _open_path(request.url.path):
            device = await run_in_threadpool(paired_device, request)
            if device is None:
                response = _refuse(request)
                _secure_cookies(response)
                return response
            request.state.device = device
        response = await call_next(request)
        _secure_cookies(response)
        return response
