"""The hub's HQ screen (本部の安否確認画面): one Japanese page over the ``/v1/hq`` JSON routes.

Thin on purpose.  The page itself holds no personal data and needs no login: the browser script
(``kiosk_ui/static/hub_hq.js``) asks for the HQ user's bearer token once, keeps it in
``sessionStorage`` (never a cookie — so no CSRF surface — and never in a URL), and calls the same
routes the CLI and other tools call, so every look is authorised and audited there.  The only new
route is ``GET /v1/hq/anpi-list/chart.svg``: the per-町字 chart drawn on the server by the
shelter's own drawing (``app.web.hq.chart_svg``), so both screens show one chart.

Everything the page loads comes from the hub itself, under the shelter's Content-Security-Policy
(``app.main.CSP``: no inline script, no CDN); the few static files it needs are served here by
exact path, because the hub has no ``/static`` mount of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.engine import Engine

from sync.hub import tenants
from sync.hub.hq import HqCaller

if TYPE_CHECKING:
    from app.services.anpi_list import AnpiFilter

#: the files the page loads (name → media type); nothing else of kiosk_ui/static is served here
STATIC = {"app.css": "text/css; charset=utf-8", "hq.css": "text/css; charset=utf-8",
          "hub_hq.css": "text/css; charset=utf-8", "hub_hq.js": "text/javascript; charset=utf-8",
          "hub_token.js": "text/javascript; charset=utf-8"}  # the token and calls, shared with /desk
#: export buttons: (label, format, encoding, element id) — as on the shelter's screen (no PFIF here:
#: the hub's PFIF has its own routes under /v1/hq/pfif)
EXPORTS = [("CSV (UTF-8 BOM付)", "csv", "utf-8-sig", "export-csv"), ("CSV (CP932)", "csv", "cp932", "export-cp932"),
           ("Excel (xlsx)", "xlsx", "", "export-xlsx"), ("PDF", "pdf", "", "export-pdf")]
PER_PAGE = 100


def page_headers() -> dict[str, str]:
    from app.main import CSP  # one policy for the shelter's pages and the hub's

    return {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}


def add_static_routes(r: APIRouter, files: dict[str, str]) -> None:
    """Serve these kiosk_ui/static files (name → media type) by name: the hub has no /static mount,
    so each hub page names exactly the files it loads."""
    from app.web.common import STATIC_DIR

    def static_file(name: str, media: str) -> Callable[[], FileResponse]:
        def serve() -> FileResponse:
            return FileResponse(STATIC_DIR / name, media_type=media, headers={"X-Content-Type-Options": "nosniff"})
        return serve

    for name, media in files.items():
        r.add_api_route(f"/static/{name}", static_file(name, media), methods=["GET"], include_in_schema=False)


def bar_href(town: str, f: AnpiFilter) -> str:
    """A bar leads to this page's list filtered to its 町字 (the other filters kept)."""
    q = {"town": town, "household": f.household, "age_band": f.age_band, "care": "1" if f.care_only else "",
         "status": f.status}
    return "/hq?" + urlencode({k: v for k, v in q.items() if v})


def router(engine: Engine, caller: HqCaller, data_key: Callable[[], Any]) -> APIRouter:
    from app import hub_export
    from app.api.hub.hq_desk import list_filters, translated
    from app.services.anpi_list import AGE_BANDS, HQ_STATUS_JA, METHODS, NO_TOWN, STATUS_JA
    from app.services.evacuees import CARE_FLAGS
    from app.web.common import templates
    from app.web.hq import chart_geometry, chart_svg

    r = APIRouter()

    def page(request: Request) -> HTMLResponse:
        html = templates.env.get_template("hub_hq.html").render(
            statuses=STATUS_JA, hq_statuses=HQ_STATUS_JA, methods=METHODS, age_bands=list(AGE_BANDS),
            care_labels=CARE_FLAGS, exports=EXPORTS, per_page=PER_PAGE, no_town=NO_TOWN)
        return HTMLResponse(html, headers=page_headers())

    # POST only so that a token form submitted without the script never puts the token in a URL;
    # the body is not read.
    r.add_api_route("/hq", page, methods=["GET", "POST"], response_class=HTMLResponse, include_in_schema=False)

    add_static_routes(r, STATIC)

    @r.get("/v1/hq/anpi-list/chart.svg")
    async def chart(request: Request, household: str = "", age_band: str = "", care: str = "",
                    status: str = "") -> Response:
        """確認済み / 死亡・行方不明 / 未確認 per 町字 of the list (its filters, as ``/v1/hq/anpi-list``),
        as SVG: 町字 names and numbers only; audited as a look at the list (``hq.viewed``)."""
        filters = list_filters(request, household, age_band, care, status)

        def fn(u: tenants.HqUser) -> Response:
            lst = hub_export.hub_anpi_list(engine, data_key(), u.municipality_code, filters=filters,
                                           include_restricted=True)  # the counts of HQ's own list view
            svg = chart_svg(chart_geometry(lst.town_progress(), lambda town: bar_href(town, lst.filters)))
            return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + str(svg),
                            media_type="image/svg+xml; charset=utf-8", headers=page_headers())
        return await caller.call(request, translated(fn), personal=True)

    return r
