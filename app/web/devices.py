"""端末の登録 (issue 15): /pair where a tablet joins `anpi serve --lan` with the laptop's one-time
code, and /admin/devices where the laptop shows that code, its certificate fingerprint (text and
QR code) and the paired devices, and revokes one. The device list is served to the laptop only.
"""

from __future__ import annotations

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, browser_session, require, set_session_cookie
from app.api.device_gate import DEVICE_COOKIE, DEVICE_MAX_AGE, paired_device, peer_is_laptop
from app.services import audit, devices
from app.services.errors import AnpiError
from app.web.common import db, redirect, render, screen

router = APIRouter(dependencies=[CSRF], include_in_schema=False)
PAIRING = "device-pairing"  # the throttle's "account" for pairing tries


def _safe_next(next_path: str) -> str:
    ok = next_path.startswith("/") and not next_path.startswith("//") and not next_path.startswith("/pair")
    return next_path if ok else ""


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _pair_page(request: Request, *, error: str = "", error_field: str = "", name: str = "", next_path: str = "",
               status_code: int = 200) -> Response:
    s = browser_session(request)
    fresh = None
    if s is None:
        s = fresh = request.app.state.sessions.new()
    lan = getattr(request.app.state, "lan", None)
    resp = render(request, "pair.html", {
        "error": error, "error_field": error_field, "name": name, "next": _safe_next(next_path),
        "csrf_token": s.csrf, "laptop": peer_is_laptop(request), "lan": lan,
        "paired": paired_device(request) if not peer_is_laptop(request) else None,
    }, status_code=status_code, user=None)
    if fresh is not None:
        set_session_cookie(resp, fresh)
    return resp


@router.get("/pair", response_class=HTMLResponse)
def pair_page(request: Request, next: str = "") -> Response:  # noqa: A002
    return _pair_page(request, next_path=next)


@router.post("/pair", response_class=HTMLResponse)
def pair_submit(request: Request, name: str = Form(""), code: str = Form(""), next: str = Form(""),  # noqa: A002
                session: Session = Depends(db)) -> Response:
    """The right code (once, within its time) pairs this device; the token goes into its cookie."""
    try:
        devices.clean_name(name)
    except AnpiError as exc:
        return _pair_page(request, error=exc.message_ja, error_field="name", name=name, next_path=next, status_code=422)
    throttle = request.app.state.login_throttle  # wrong codes count per address, like wrong PINs
    refused = throttle.refusal(_client(request), PAIRING)
    if refused is not None:
        return _pair_page(request, error=f"接続コードを何度も間違えたため、この端末からはあと{max(1, -(-refused.seconds_left // 60))}分間登録できません",
                          error_field="code", name=name, next_path=next, status_code=429)
    if not request.app.state.pairing.consume(code):
        throttle.failed(_client(request), PAIRING)
        audit.record(session, None, "device_pair_failed", screen(request), detail={"client": _client(request)})
        session.commit()
        return _pair_page(request, error="接続コードが違うか、期限が切れています。ノートパソコンで新しいコードを表示してください",
                          error_field="code", name=name, next_path=next, status_code=401)
    throttle.succeeded(_client(request), PAIRING)
    device, token = devices.pair(session, name, _client(request))
    audit.record(session, None, "device_pair", screen(request), [f"device:{device.id}"],
                 {"device_name": device.name, "client": device.client})
    session.commit()
    resp = redirect(_safe_next(next) or "/switch")
    resp.set_cookie(DEVICE_COOKIE, token, httponly=True, secure=True, samesite="lax", path="/", max_age=DEVICE_MAX_AGE)
    return resp


def _laptop_only(request: Request) -> Response | None:
    """On the LAN listener the device list answers the laptop's own browser only."""
    if getattr(request.app.state, "lan", None) is not None and not peer_is_laptop(request):
        return render(request, "error.html", {"status": 403, "message": "この画面は避難所のノートパソコンでのみ使えます"},
                      status_code=403)
    return None


def qr_data_uri(text: str) -> str:
    return segno.make(text, error="m").svg_data_uri(scale=5, border=2)


def _devices_page(request: Request, session: Session, *, message: str = "", status_code: int = 200) -> Response:
    lan = getattr(request.app.state, "lan", None)
    code = request.app.state.pairing.current()
    return render(request, "admin_devices.html", {
        "devices": devices.list_devices(session), "lan": lan, "code": code, "message": message,
        "qr": qr_data_uri(f"{lan.pair_url}#sha256={lan.fingerprint.replace(':', '')}") if lan and lan.urls else "",
    }, status_code=status_code)


@router.get("/admin/devices", response_class=HTMLResponse)
def devices_page(request: Request, done: str = "", user: CurrentUser = Depends(require("admin")),
                 session: Session = Depends(db)) -> Response:
    return _laptop_only(request) or _devices_page(request, session, message=done)


@router.post("/admin/devices/code", response_class=HTMLResponse)
def issue_code(request: Request, user: CurrentUser = Depends(require("admin")), session: Session = Depends(db)) -> Response:
    refused = _laptop_only(request)
    if refused:
        return refused
    request.app.state.pairing.issue()
    audit.record(session, user, "device_code", screen(request))
    session.commit()
    return redirect("/admin/devices#pair-code")


@router.post("/admin/devices/{device_id}/revoke", response_class=HTMLResponse)
def revoke_device(request: Request, device_id: str, user: CurrentUser = Depends(require("admin")),
                  session: Session = Depends(db)) -> Response:
    refused = _laptop_only(request)
    if refused:
        return refused
    try:
        dev = devices.revoke(session, device_id, user.name)
    except AnpiError as exc:
        session.rollback()
        return _devices_page(request, session, message=exc.message_ja, status_code=404)
    audit.record(session, user, "device_revoke", screen(request), [f"device:{dev.id}"], {"device_name": dev.name})
    session.commit()
    return redirect(f"/admin/devices?done={dev.name} の登録を取り消しました")
