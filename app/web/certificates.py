"""り災証明書 / 被災証明書 desk screens: find the applicant in the registry, see the household, issue,
download the PDF or print, reissue or void (with a reason), and the manual path for people the
registry does not know. Thin: everything happens in app.services.certificates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import certificates as certs
from app.services import disclosure
from app.services.errors import AnpiError, Conflict, Forbidden, InvalidInput, NotFound
from app.web.common import audit_view, db, redirect, render, screen
from matching.disclosure import Facts, decide

router = APIRouter(dependencies=[CSRF], include_in_schema=False)

PERM = "certificate"
KIND_CHOICES = certs.KIND_JA
STATUS_CHOICES = {"": "すべて", "issued": "有効", "void": "無効"}
DONE_JA = {"issued": "発行しました", "reissued": "再発行しました", "voided": "無効にしました"}


def _ctx(**extra: Any) -> dict[str, Any]:
    """What every certificate template uses to show kinds, grades and identity in Japanese."""
    return {"kinds": KIND_CHOICES, "grades": certs.DAMAGE_GRADES, "damage_ja": certs.DAMAGE_JA,
            "identity_ja": certs.IDENTITY_JA, "status_ja": certs.STATUS_JA, "action_ja": certs.ACTION_JA,
            "wareki": certs.wareki, "birth_text": certs.birth_text, "local_date": certs.local_date, **extra}


# --- list -----------------------------------------------------------------------------------------

@router.get("/desk/certificates", response_class=HTMLResponse)
def certificate_list(request: Request, q: str = "", kind: str = "", status: str = "", done: str = "",
                     number: str = "", user: CurrentUser = Depends(require(PERM)),
                     session: Session = Depends(db)) -> HTMLResponse:
    error = ""
    f = certs.CertificateFilter(q=q.strip(), kind=kind if kind in KIND_CHOICES else "",
                                status=status if status in STATUS_CHOICES else "",
                                reveal_restricted=user.can("restricted"))
    who, prot = disclosure.caller(user), disclosure.protected(session)
    rows = [disclosure.certificate_for(who, prot, c) for c in certs.list_certificates(session, f)]
    if f.q and not who.sees_restricted:  # a protected household is never found by its address
        rows = [c for c in rows if not isinstance(c, disclosure.MaskedCertificate)
                or f.q.upper() in c.number or f.q in c.head_name or f.q in (c.resident_id, c._cert.household_id)]
    audit_view(session, request, user, "search" if f.q else "view", [f"certificate:{c.number}" for c in rows],
               {"q": f.q, "kind": f.kind, "status": f.status, "count": len(rows)})
    session.commit()
    return render(request, "certificates.html", _ctx(rows=rows, f=f, statuses=STATUS_CHOICES, error=error,
                                                     done=DONE_JA.get(done, ""), done_number=number))


# --- issue from the registry ----------------------------------------------------------------------

def _household_view(session: Session, hh: certs.Household, user: CurrentUser) -> dict[str, Any]:
    """The household as the desk sees it: 閲覧制限 hides addresses from roles that may not see them."""
    prot = disclosure.protected(session)
    facts = Facts(flagged=hh.restricted, household_flagged=any(m.resident_id in prot.residents for m in hh.members))
    hidden = not decide(disclosure.caller(user), facts).whereabouts
    members = [{**certs.member_dict(m), "address": "（閲覧制限）" if hidden else m.address, "restricted": m.restricted}
               for m in hh.members]
    head_name = certs.resident_name(hh.head)
    return {"hh": hh, "hidden": hidden, "members": members, "head_name": head_name,
            "head_address": "（閲覧制限）" if hidden else hh.head.address,
            "folded": certs.folded_characters("".join([head_name, hh.head.address, *(m["name"] for m in members)]))}


def _new_page(request: Request, session: Session, user: CurrentUser, *, resident_id: str = "",
              name: str = "", kana: str = "", birth: str = "", search: dict[str, Any] | None = None,
              form: dict[str, Any] | None = None, errors: dict[str, str] | None = None, error: str = "",
              status_code: int = 200) -> HTMLResponse:
    view: dict[str, Any] | None = None
    if resident_id:
        try:
            hh = certs.household(session, resident_id)
            view = _household_view(session, hh, user)
            subjects = [f"resident:{m.resident_id}" for m in hh.members]
            audit_view(session, request, user, "view", subjects, {"resident_id": resident_id})
        except AnpiError as exc:
            error, status_code = exc.message_ja, _status(exc)
    if search is not None:
        audit_view(session, request, user, "search",
                   [f"resident:{c['resident_id']}" for c in search.get("candidates", [])],
                   {"query": {k: v for k, v in {"name": name, "kana": kana, "birth": birth}.items() if v}})
    session.commit()
    default_form = {"kind": "risai", "damage": "", "cause": "", "location": "", "in_person": "",
                    "id_note": "", "members": "1"}
    return render(request, "certificate_new.html", _ctx(
        resident_id=resident_id, name=name, kana=kana, birth=birth, search=search, view=view,
        form={**default_form, **(form or {})}, errors=errors or {}, error=error), status_code=status_code)


@router.get("/desk/certificates/new", response_class=HTMLResponse)
def certificate_new(request: Request, resident_id: str = "", name: str = "", kana: str = "", birth: str = "",
                    user: CurrentUser = Depends(require(PERM)), session: Session = Depends(db)) -> HTMLResponse:
    search = None
    error = ""
    if not resident_id and (name.strip() or kana.strip()):
        from app.services.search import match_one

        # match_one opens its own connections: our session has not touched the database yet
        try:
            search = match_one(request.app.state.engine, name=name, kana=kana, birth=birth, limit=8,
                               reveal_restricted=user.can("restricted"))
        except AnpiError as exc:
            error = exc.message_ja
    return _new_page(request, session, user, resident_id=resident_id.strip(), name=name, kana=kana, birth=birth,
                     search=search, error=error)


def _status(exc: AnpiError) -> int:
    for cls, code in ((NotFound, 404), (Forbidden, 403), (Conflict, 409)):
        if isinstance(exc, cls):
            return code
    return 422


def _field_errors(exc: AnpiError) -> tuple[dict[str, str], str]:
    if isinstance(exc, InvalidInput) and exc.field:
        return {exc.field: exc.message_ja}, ""
    return {}, exc.message_ja


@router.post("/desk/certificates", response_class=HTMLResponse)
def certificate_issue(request: Request, resident_id: str = Form(""), kind: str = Form(""), damage: str = Form(""),
                      cause: str = Form(""), location: str = Form(""), in_person: str = Form(""),
                      id_note: str = Form(""), members: str = Form(""),
                      user: CurrentUser = Depends(require(PERM)), session: Session = Depends(db)) -> Response:
    form = {"kind": kind, "damage": damage, "cause": cause, "location": location, "in_person": in_person,
            "id_note": id_note, "members": members}
    try:
        cert = certs.issue(session, resident_id=resident_id, kind=kind or "risai",
                           damage=damage if kind != "hisai" else "", cause=cause, location=location,
                           in_person=bool(in_person), identity_note=id_note, include_members=bool(members),
                           by=user, screen=screen(request), allow_restricted=user.can("restricted"))
        session.commit()
    except AnpiError as exc:
        session.rollback()
        errors, error = _field_errors(exc)
        return _new_page(request, session, user, resident_id=resident_id.strip(), form=form, errors=errors,
                         error=error, status_code=_status(exc))
    return redirect(f"/desk/certificates/{quote(cert.number)}?done=issued")


# --- manual path ----------------------------------------------------------------------------------

def _manual_page(request: Request, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                 error: str = "", status_code: int = 200) -> HTMLResponse:
    default = {"kind": "risai", "damage": "", "cause": "", "name": "", "address": "", "location": "",
               "members": "", "note": ""}
    return render(request, "certificate_manual.html",
                  _ctx(form={**default, **(form or {})}, errors=errors or {}, error=error), status_code=status_code)


@router.get("/desk/certificates/manual", response_class=HTMLResponse)
def certificate_manual(request: Request, user: CurrentUser = Depends(require(PERM))) -> HTMLResponse:
    return _manual_page(request)


@router.post("/desk/certificates/manual", response_class=HTMLResponse)
def certificate_manual_issue(request: Request, kind: str = Form(""), damage: str = Form(""), cause: str = Form(""),
                             name: str = Form(""), address: str = Form(""), location: str = Form(""),
                             members: str = Form(""), note: str = Form(""),
                             user: CurrentUser = Depends(require(PERM)), session: Session = Depends(db)) -> Response:
    form = {"kind": kind, "damage": damage, "cause": cause, "name": name, "address": address, "location": location,
            "members": members, "note": note}
    try:
        cert = certs.issue_manual(session, kind=kind or "risai", damage=damage if kind != "hisai" else "",
                                  cause=cause, name=name, address=address, location=location,
                                  members=certs.parse_members(members), note=note, by=user, screen=screen(request))
        session.commit()
    except AnpiError as exc:
        session.rollback()
        errors, error = _field_errors(exc)
        return _manual_page(request, form, errors, error, status_code=422)
    return redirect(f"/desk/certificates/{quote(cert.number)}?done=issued")


# --- one certificate ------------------------------------------------------------------------------

def _shown(session: Session, user: CurrentUser, cert: Any) -> Any:
    """The certificate as the one 閲覧制限 rule lets this user read it."""
    return disclosure.certificate_for(disclosure.caller(user), disclosure.protected(session), cert)


def _printable_for(session: Session, user: CurrentUser, cert: Any) -> None:
    """A PDF or print of a protected household only for roles that may see it (the hub's 403)."""
    if not disclosure.may_print_certificate(disclosure.caller(user), disclosure.protected(session), cert):
        raise Forbidden(f"certificate {cert.number} belongs to a household under 閲覧制限 (DV等支援措置)",
                        "この証明書の世帯は閲覧制限（支援措置）の対象です。本部または管理者が対応してください")


def _detail(request: Request, session: Session, user: CurrentUser, number: str, *, done: str = "",
            errors: dict[str, str] | None = None, error: str = "", status_code: int = 200) -> HTMLResponse:
    cert = _shown(session, user, certs.get_certificate(session, number))
    events = certs.history(session, cert.number)
    audit_view(session, request, user, "view", [f"certificate:{cert.number}"])
    session.commit()
    folded = certs.folded_characters("".join([cert.head_name, cert.head_address, cert.location,
                                              *(str(m.get("name", "")) for m in cert.members or [])]))
    return render(request, "certificate_detail.html", _ctx(
        c=cert, events=events, done=DONE_JA.get(done, ""), errors=errors or {}, error=error, folded=folded),
        status_code=status_code)


@router.get("/desk/certificates/{number}", response_class=HTMLResponse)
def certificate_detail(request: Request, number: str, done: str = "", user: CurrentUser = Depends(require(PERM)),
                       session: Session = Depends(db)) -> HTMLResponse:
    return _detail(request, session, user, number, done=done)


@router.get("/desk/certificates/{number}/pdf")
def certificate_pdf(request: Request, number: str, user: CurrentUser = Depends(require(PERM)),
                    session: Session = Depends(db)) -> Response:
    cert = certs.get_certificate(session, number)
    _printable_for(session, user, cert)
    data = certs.pdf(session, number, by=user, screen=screen(request))
    session.commit()
    fname = f"{cert.number}.pdf"
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename=\"{fname}\"",
                             "Cache-Control": "no-store"})


@router.get("/desk/certificates/{number}/print", response_class=HTMLResponse)
def certificate_print(request: Request, number: str, user: CurrentUser = Depends(require(PERM)),
                      session: Session = Depends(db)) -> HTMLResponse:
    cert = certs.get_certificate(session, number)
    certs.ensure_printable(cert)
    _printable_for(session, user, cert)
    reissued_at = certs.last_reissue_at(session, cert.number)
    audit_view(session, request, user, "print", [f"certificate:{cert.number}"],
               {"number": cert.number, "format": "html", "reissue_count": cert.reissue_count})
    session.commit()
    return render(request, "certificate_print.html", _ctx(
        c=cert, issuer=certs.issuer_from_env(), reissued_at=reissued_at, printable=certs.printable,
        certify=certs.CERTIFY_RISAI if cert.kind == "risai" else certs.CERTIFY_HISAI))


@router.post("/desk/certificates/{number}/reissue", response_class=HTMLResponse)
def certificate_reissue(request: Request, number: str, reason: str = Form(""),
                        user: CurrentUser = Depends(require(PERM)), session: Session = Depends(db)) -> Response:
    return _change(request, session, user, number, "reissue", "reissued",
                   lambda: certs.reissue(session, number, by=user, reason=reason, screen=screen(request)))


@router.post("/desk/certificates/{number}/void", response_class=HTMLResponse)
def certificate_void(request: Request, number: str, reason: str = Form(""),
                     user: CurrentUser = Depends(require(PERM)), session: Session = Depends(db)) -> Response:
    return _change(request, session, user, number, "void", "voided",
                   lambda: certs.void(session, number, reason, by=user, screen=screen(request)))


def _change(request: Request, session: Session, user: CurrentUser, number: str, form: str, done: str,
            action: Callable[[], Any]) -> Response:
    """Reissue or void from the detail page: back to it with the outcome, or with the form's errors
    (fields prefixed by the form's name, since both forms are on one page)."""
    try:
        cert = action()
        session.commit()
    except NotFound:
        raise
    except AnpiError as exc:
        session.rollback()
        errors, error = _field_errors(exc)
        return _detail(request, session, user, number, errors={f"{form}_{k}": v for k, v in errors.items()},
                       error=error, status_code=409 if not errors else 422)
    return redirect(f"/desk/certificates/{quote(cert.number)}?done={done}")
