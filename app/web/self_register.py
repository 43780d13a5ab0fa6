"""本人記入 (self-registration): the kiosk screen evacuees fill in before reaching the desk.

Reachable without a staff login, on a kiosk tablet or the evacuee's own phone. It shows nothing
about anyone else (no search, no candidates, no names): it only takes a household's form and puts
it in the queue staff finish intake from (app/web/self_queue.py). A kiosk session is its own
browser session marked `kiosk` (app/api/auth.py refuses it on every staff route); after
`self_idle_seconds` without use the page erases the form and the server forgets the session and
its draft. Each client address is rate limited (app/services/rate_limit.py).
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, CSRF_FIELD, AuthError, BrowserSession, browser_session, csrf_protect, set_session_cookie
from app.api.pin_login import client_of
from app.services import audit, self_registration
from app.services.evacuees import CARE_FLAGS
from app.web import intake
from app.web.common import db, redirect, templates
from app.web.self_i18n import LANG_NAMES, html_lang, pick_lang, translations

# POST /self checks the CSRF token itself (an expired page is shown again in the person's language)
router = APIRouter(include_in_schema=False)

DRAFT_FORM = "self"
#: what the kiosk may set; never a registry link (resident_id) or anything staff decide
SELF_MEMBER_FIELDS = ("name", "name_kana", "birth_date", "sex", "relationship", "allergy_detail")
HOUSEHOLD_FIELDS = ("address", "contact")
CONSENTS = intake.CONSENT_FIELDS
SEX_VALUES = ("", "男", "女", "不明")
_MEMBER_KEY = re.compile(r"^m-(\d{1,2})-(.+)$")


def _empty_member() -> dict[str, Any]:
    m: dict[str, Any] = {f: "" for f in SELF_MEMBER_FIELDS}
    m["care"] = {}
    return m


def self_state(items: dict[str, str]) -> dict[str, Any]:
    """The kiosk form as {household, consents, members}, empty members kept (the person is typing)."""
    household = {f: str(items.get(f, "") or "") for f in HOUSEHOLD_FIELDS}
    consents = {f: items.get(f, "") if items.get(f) in ("yes", "no") else "" for f in CONSENTS}
    members: dict[int, dict[str, Any]] = {}
    for key, value in items.items():
        m = _MEMBER_KEY.match(key)
        if not m:
            continue
        mem = members.setdefault(int(m.group(1)), _empty_member())
        fld = m.group(2)
        if fld.startswith("care-") and fld[5:] in CARE_FLAGS:
            mem["care"][fld[5:]] = bool(value)
        elif fld in SELF_MEMBER_FIELDS:
            mem[fld] = str(value or "") if fld != "sex" or value in SEX_VALUES else ""
    ordered = [members[i] for i in sorted(members)][:intake.MAX_MEMBERS] or [_empty_member()]
    return {"household": household, "consents": consents, "members": ordered}


def kept_people(state: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(index on the screen, person) of the people sent: a row without name, reading or birth date
    is left out, unless nothing at all was typed (then the first row, to say the name is missing)."""
    people = [(i, m) for i, m in enumerate(state["members"]) if any(m[f].strip() for f in ("name", "name_kana", "birth_date"))]
    return people or [(0, state["members"][0])]


def entry_items(state: dict[str, Any]) -> dict[str, str]:
    """The form as the desk's intake form reads it: people without a name or birth date left out,
    the household's consent answer given to each person, the first person 世帯主."""
    out = {f: state["household"][f].strip() for f in HOUSEHOLD_FIELDS}
    for i, (_typed_as, mem) in enumerate(kept_people(state)):
        for f in SELF_MEMBER_FIELDS:
            out[f"m-{i}-{f}"] = mem[f].strip()
        if i == 0 and not mem["relationship"].strip():
            out["m-0-relationship"] = "世帯主"
        out.update({f"m-{i}-care-{k}": "1" for k, v in mem["care"].items() if v})
        out.update({f"m-{i}-{c}": state["consents"][c] for c in CONSENTS})
    return out


def error_codes(state: dict[str, Any]) -> dict[str, str]:
    """Field name → which translated message to show ("name", "birth", "long"), by the desk's own checks."""
    on_screen = [i for i, _m in kept_people(state)]
    errors = intake.validate(intake.form_state(entry_items(state)))
    codes: dict[str, str] = {}
    for key in errors:
        m = _MEMBER_KEY.match(key)
        fld = m.group(2) if m else key
        code = {"name": "name", "name_kana": "name", "birth_date": "birth"}.get(fld, "long")
        codes[f"m-{on_screen[int(m.group(1))]}-{fld}" if m else key] = code
    return codes


def _draft_owner(s: BrowserSession) -> str:
    return f"kiosk:{s.token}"


def kiosk_session(request: Request, *, check_idle: bool = True) -> tuple[BrowserSession, bool]:
    """This browser's kiosk session (a fresh one when it has none, a staff one, or an idle one).

    Why a POST skips the idle check: typing does not reach the server, so a slow writer's last
    request may be old; while the page is open its own timer (self.js) erases an idle form and
    ends the session through POST /self/reset. A page opened again (GET) after the idle time
    finds the session and its draft gone."""
    st = request.app.state.sessions
    s = browser_session(request)
    idle = request.app.state.settings.self_idle_seconds
    expired = check_idle and s is not None and s.kiosk and time.monotonic() - s.last_seen > idle
    if s is not None and s.kiosk and not expired:
        s.last_seen = time.monotonic()
        return s, False
    if s is not None and s.kiosk:
        st.drop_draft(_draft_owner(s), DRAFT_FORM)
        st.forget(s)
    return st.new(kiosk=True), True


def _limited(request: Request, limiter: str) -> int:
    return getattr(request.app.state, limiter).hit(client_of(request))


def _render(request: Request, s: BrowserSession | None, new: bool, template: str, lang: str, ctx: dict[str, Any],
            status_code: int = 200) -> HTMLResponse:
    tr = translations(lang)
    resp = templates.TemplateResponse(request, template, {
        "request": request, "lang": lang, "html_lang": html_lang(lang), "lang_names": LANG_NAMES,
        "_": tr.gettext, "csrf_token": s.csrf if s else "", "csrf_field": CSRF_FIELD, "care_flags": list(CARE_FLAGS),
        "idle_seconds": request.app.state.settings.self_idle_seconds, "max_members": intake.MAX_MEMBERS, **ctx,
    }, status_code=status_code)
    if new and s is not None:
        set_session_cookie(resp, s)
    return resp


def _too_many(request: Request, lang: str) -> HTMLResponse:
    """429 in the person's language; no session is made or touched for a refused client."""
    return _render(request, None, False, "self_sent.html", lang, {"limited": True, "ticket": None}, status_code=429)


@router.get("/self", response_class=HTMLResponse)
def self_form(request: Request, lang: str = "", timeout: str = "") -> Response:
    lang = pick_lang(lang)
    if _limited(request, "self_requests"):
        return _too_many(request, lang)
    s, new = kiosk_session(request)
    draft = request.app.state.sessions.get_draft(_draft_owner(s), DRAFT_FORM) or {}
    return _render(request, s, new, "self.html", lang, {"state": self_state(draft), "errors": {},
                                                         "timed_out": bool(timeout) and not draft})


@router.post("/self", response_class=HTMLResponse)
async def self_submit(request: Request, session: Session = Depends(db)) -> Response:
    form = await request.form()
    items = {k: v for k, v in form.items() if isinstance(v, str)}
    lang = pick_lang(items.get("lang"))
    if _limited(request, "self_requests"):
        return _too_many(request, lang)
    try:
        await csrf_protect(request)
    except AuthError:  # a restart or a stale tab: their own typing back, a fresh session, press again
        s, new = kiosk_session(request, check_idle=False)
        return _render(request, s, new, "self.html", lang, {"state": self_state(items), "errors": {}, "expired": True},
                       status_code=403)
    s, new = kiosk_session(request, check_idle=False)
    if new:  # the session ended (the idle timer fired, or a restart): the page was erased, nothing is kept
        return _render(request, s, new, "self.html", lang, {"state": self_state({}), "errors": {}, "timed_out": True})
    state = self_state(items)
    action = items.get("action", "")
    store = request.app.state.sessions
    if action == "add" and len(state["members"]) < intake.MAX_MEMBERS:
        state["members"].append(_empty_member())
    elif action.startswith("remove-") and action[7:].isdigit() and 0 < int(action[7:]) < len(state["members"]):
        del state["members"][int(action[7:])]
    elif action == "send":
        return _send(request, s, session, state, lang)
    elif action == "clear":
        store.drop_draft(_draft_owner(s), DRAFT_FORM)
        return redirect(f"/self?lang={lang}")
    store.save_draft(_draft_owner(s), DRAFT_FORM, entry_items_raw(state))
    return _render(request, s, new, "self.html", lang, {"state": state, "errors": {}, "focus": len(state["members"]) - 1
                                                         if action == "add" else None})


def entry_items_raw(state: dict[str, Any]) -> dict[str, str]:
    """The form as typed (empty members kept), for the draft a language switch or reload restores."""
    out = {f: state["household"][f] for f in HOUSEHOLD_FIELDS}
    out.update({c: state["consents"][c] for c in CONSENTS})
    for i, mem in enumerate(state["members"]):
        out.update({f"m-{i}-{f}": mem[f] for f in SELF_MEMBER_FIELDS})
        out.update({f"m-{i}-care-{k}": "1" for k, v in mem["care"].items() if v})
    return out


def _send(request: Request, s: BrowserSession, session: Session, state: dict[str, Any], lang: str) -> Response:
    errors = error_codes(state)
    if errors:
        request.app.state.sessions.save_draft(_draft_owner(s), DRAFT_FORM, entry_items_raw(state))
        return _render(request, s, False, "self.html", lang, {"state": state, "errors": errors}, status_code=422)
    if _limited(request, "self_entries"):
        return _too_many(request, lang)
    entry = self_registration.submit(session, entry_items(state), lang)
    # no staff member: the entry is recorded with the client address, so a flood can be traced
    audit.record(session, None, "self_entry", "POST /self", [f"self_entry:{entry.id}"],
                 {"ticket": entry.ticket, "lang": lang, "client": client_of(request)})
    session.commit()
    request.app.state.sessions.drop_draft(_draft_owner(s), DRAFT_FORM)
    return redirect(f"/self/sent?lang={lang}&ticket={entry.ticket}")


@router.get("/self/sent", response_class=HTMLResponse)
def self_sent(request: Request, lang: str = "", ticket: int = 0) -> Response:
    lang = pick_lang(lang)
    if _limited(request, "self_requests"):
        return _too_many(request, lang)
    s, new = kiosk_session(request)
    return _render(request, s, new, "self_sent.html", lang, {"limited": False, "ticket": ticket if ticket > 0 else None})


@router.post("/self/reset", dependencies=[CSRF])
def self_reset(request: Request) -> Response:
    """The page's inactivity timer fired: forget the draft and the session (the page reloads empty)."""
    s = browser_session(request)
    if s is not None and s.kiosk:
        request.app.state.sessions.drop_draft(_draft_owner(s), DRAFT_FORM)
        request.app.state.sessions.forget(s)
    return Response(status_code=204)
