"""避難者カード at the desk: print cards (after intake, from a person's page) and the scan field.

Keyboard only: the scan field has the focus; a USB scanner types the QR text and Enter; the
answer page puts the focus on its one button, so Enter re-checks the person in or receives them
from another shelter — two keystrokes after the scan. A forged or altered card is refused in
plain Japanese. The camera path (kiosk_ui/static/scan.js, vendored jsQR) only fills the same
field, and only where the browser offers getUserMedia. The logic is app.services.card_scan.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import card_keys, card_scan, cards, evacuees
from app.services.errors import AnpiError, Conflict
from app.web.common import audit_view, db, redirect, render

router = APIRouter(dependencies=[CSRF], include_in_schema=False)
DONE_JA = {"checkin": "再入所を記録しました", "arrive": "この避難所に受け入れました（移動の記録を残しました）"}


@router.post("/cards/print")
async def print_cards(request: Request, user: CurrentUser = Depends(require("register")),
                      session: Session = Depends(db)) -> Response:
    form = await request.form()
    ids = [str(v) for v in form.getlist("ids") if isinstance(v, str) and v.strip()]
    size = str(form.get("size") or "a6")
    printed = cards.print_cards(session, ids, size=size)
    audit_view(session, request, user, "card_print", subjects=[f"evacuee:{e}" for e in printed.evacuee_ids],
               detail={"size": size, "cards": len(printed.evacuee_ids), "blind": len(printed.blind)})
    session.commit()
    return Response(printed.pdf, media_type="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="cards.pdf"'})


def _page(request: Request, *, result: card_scan.ScanResult | None = None, error: str = "", done: str = "",
          done_name: str = "", status_code: int = 200, text: str = "") -> HTMLResponse:
    return render(request, "scan.html", {
        "result": result, "error": error, "done": DONE_JA.get(done, ""), "done_name": done_name, "text": text,
        "sex_ja": evacuees.SEX_JA, "action_ja": card_scan.ACTION_JA, "full_name": evacuees.full_name,
    }, status_code=status_code)


@router.get("/desk/scan", response_class=HTMLResponse)
def scan_form(request: Request, done: str = "", evacuee: str = "", user: CurrentUser = Depends(require("register")),
              session: Session = Depends(db)) -> HTMLResponse:
    name = ""
    if done and evacuee:
        ev = session.get(evacuees.Evacuee, evacuee)
        if ev is not None:
            name = evacuees.full_name(ev) or ev.name_kana_raw
            audit_view(session, request, user, subjects=[f"evacuee:{ev.id}"])
            session.commit()
    return _page(request, done=done, done_name=name)


@router.post("/desk/scan", response_class=HTMLResponse)
async def scan_submit(request: Request, user: CurrentUser = Depends(require("register")),
                      session: Session = Depends(db)) -> HTMLResponse:
    text = str((await request.form()).get("text") or "")
    try:
        res = card_scan.look_up(session, text)
    except card_keys.CardRefused as exc:
        audit_view(session, request, user, "card_refused", detail={"reason": exc.reason})
        session.commit()
        return _page(request, error=exc.message_ja, status_code=422)
    subjects = [f"evacuee:{res.evacuee.id}"] if res.evacuee else [f"card:{res.card.evacuee_id}"]
    audit_view(session, request, user, "card_scan", subjects=subjects, detail={"action": res.action})
    session.commit()
    return _page(request, result=res, text=text.strip())


@router.post("/desk/scan/confirm", response_class=HTMLResponse)
async def scan_confirm(request: Request, user: CurrentUser = Depends(require("register")),
                       session: Session = Depends(db)) -> Response:
    form = await request.form()
    text = str(form.get("text") or "")
    try:
        res, ev = card_scan.confirm(session, text, by=user.name, allow_duplicate=bool(form.get("allow_duplicate")))
        audit_view(session, request, user, "card_" + res.action,
                   subjects=[f"evacuee:{ev.id}", f"card:{res.card.evacuee_id}"], detail={"action": res.action})
        session.commit()
    except card_keys.CardRefused as exc:
        session.rollback()
        return _page(request, error=exc.message_ja, status_code=422)
    except (Conflict, AnpiError) as exc:
        session.rollback()
        return _page(request, error=exc.message_ja, status_code=409)
    return redirect(f"/desk/scan?done={res.action}&evacuee={ev.id}")
