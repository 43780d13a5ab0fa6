"""The hub's desk screen (ハブの窓口画面, ``GET /desk``): 安否照会, 証明書 and 捜索依頼 (PFIF) in one page.

Built like the HQ screen (``app.web.hub_pages``): the page holds no personal data and needs no
login; its script (``kiosk_ui/static/hub_desk.js``, with the token code shared with /hq in
``hub_token.js``) asks for the desk user's bearer token once, keeps it in ``sessionStorage`` and
calls the desks' JSON routes (``/v1/hq/inquiries``, ``/v1/hq/certificates…``, ``/v1/hq/pfif/…``),
so every answer is authorised, tenant-bound and audited there, exactly as for the CLI.

The wording is the shelter's (the answer script and the "no information" sentence from
``app.services.inquiry_rules``, the certificate kinds and damage grades from the PDF writer), put
into the page here so the script never spells them itself.  The few static files the page needs
beyond the HQ screen's are served by exact path: the hub has no ``/static`` mount.
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine

from sync.hub.hq import HqCaller

#: served here (name → media type); app.css and hub_token.js come with the HQ screen's router
STATIC = {"hub_desk.js": "text/javascript; charset=utf-8", "hub_desk.css": "text/css; charset=utf-8",
          "inquiry.css": "text/css; charset=utf-8", "certificate.css": "text/css; charset=utf-8",
          "sought.css": "text/css; charset=utf-8"}


def page_context() -> dict[str, Any]:
    """Choices and fixed sentences of the forms, from the same modules the shelter's desk uses."""
    from app.services import certificates as certs
    from app.services import inquiry_rules as rules
    from app.services.pfif import DECISION_JA, STATUS_PFIF_JA

    return {
        "relationships": rules.RELATIONSHIPS, "id_proofs": rules.ID_PROOFS,
        "script": {"head": rules.SCRIPT_ANSWERED_HEAD, "tail": rules.SCRIPT_ANSWERED_TAIL,
                   "none": rules.SCRIPT_NO_INFORMATION},
        "outcomes": rules.OUTCOME_JA, "circled": {str(k): v for k, v in rules.CIRCLED.items()},
        "kinds": certs.KIND_JA, "grades": list(certs.DAMAGE_GRADES), "cert_statuses": certs.STATUS_JA,
        "identity_ja": certs.IDENTITY_JA, "action_ja": certs.ACTION_JA,
        "pfif_decisions": DECISION_JA, "pfif_statuses": STATUS_PFIF_JA,
    }


def router(engine: Engine, caller: HqCaller, data_key: Callable[[], Any]) -> APIRouter:
    """``/desk`` and its static files; engine, caller and data_key are unused (the page reads nothing)."""
    from app.web.common import templates
    from app.web.hub_pages import add_static_routes, page_headers

    r = APIRouter()
    ctx = page_context()

    def page() -> HTMLResponse:
        return HTMLResponse(templates.env.get_template("hub_desk.html").render(**ctx), headers=page_headers())

    # POST only so that a form submitted without the script never puts what was typed in a URL;
    # the body is not read.
    r.add_api_route("/desk", page, methods=["GET", "POST"], response_class=HTMLResponse, include_in_schema=False)

    add_static_routes(r, STATIC)
    return r
