"""安否確認 (HQ safety-confirmation list): counts, a chart per 町字, the paged list, HQ records, exports.

Thin: the list comes from `app.services.anpi_list.build_anpi_list`, records go through
`record_hq_confirmation`, files through `export_anpi_list` (which audits them). 閲覧制限 people
appear here only for roles holding the "restricted" permission, marked as such; exports never
contain them.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from sqlmodel import Session

from app.api.auth import CSRF, CurrentUser, require
from app.services import anpi_list as al
from app.services.errors import AnpiError, InvalidInput
from app.web.common import audit_view, db, redirect, render, screen

router = APIRouter(dependencies=[CSRF], include_in_schema=False)

PER_PAGE = 100
#: export buttons: (label, format, encoding, id)
EXPORTS = [("CSV (UTF-8 BOM付)", "csv", "utf-8-sig", "export-csv"), ("CSV (CP932)", "csv", "cp932", "export-cp932"),
           ("Excel (xlsx)", "xlsx", "", "export-xlsx"), ("PDF", "pdf", "", "export-pdf"), ("PFIF", "pfif", "", "export-pfif")]
_MEDIA = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          "pdf": "application/pdf", "pfif": "application/xml"}
_SUFFIX = {"csv": "csv", "xlsx": "xlsx", "pdf": "pdf", "pfif": "xml"}
DONE_JA = {"confirmed_other": "他の手段で確認したことを記録しました", "dead": "死亡の報告を記録しました",
           "missing": "行方不明の報告を記録しました", "withdrawn": "直前の記録を取り消しました"}


@dataclass
class Params:
    town: str = ""
    household: str = ""
    age_band: str = ""
    care_only: bool = False
    status: str = ""
    per_page: int = PER_PAGE
    name: str = ""

    def filters(self) -> al.AnpiFilter:
        return al.AnpiFilter(towns=(self.town,) if self.town else (), household=self.household,
                             age_band=self.age_band, care_only=self.care_only, status=self.status, name=self.name)

    def query(self, **extra: Any) -> str:
        q = {"name": self.name, "town": self.town, "household": self.household, "age_band": self.age_band,
             "care_only": "1" if self.care_only else "", "status": self.status,
             "per_page": self.per_page if self.per_page != PER_PAGE else "", **extra}
        return urlencode({k: v for k, v in q.items() if v not in ("", None)})


def _params(town: str, household: str, age_band: str, care_only: str, status: str, name: str = "") -> Params:
    return Params(town.strip(), household.strip(), age_band.strip(), care_only in ("1", "on", "true"), status.strip(),
                  name=name.strip()[:100])


#: bar colours of the chart: 確認済み / 死亡・行方不明 / 未確認
CHART_COLOURS = ("#1e7b34", "#7a1f2b", "#d9d9d2")


def chart_geometry(progress: list[dict[str, Any]], href: Callable[[str], str], *, width: int = 760, bar: int = 18,
                   gap: int = 6, label_w: int = 180) -> dict[str, Any]:
    """Geometry of the stacked bars (確認済み / 死亡・行方不明 / 未確認) per 町字.

    Pure: ``progress`` is ``[{"town", "safe", "dead_missing", "unconfirmed", "total"}, …]`` (the
    shelter's ``AnpiList.town_progress()``, or the hub's counts); ``href(town)`` is where a bar leads
    (the page's own list filtered to that 町字).
    """
    plot = width - label_w - 170
    bars = []
    for i, p in enumerate(progress):
        total = p["total"] or 1
        w_safe = round(plot * p["safe"] / total, 1)
        w_dm = round(plot * p["dead_missing"] / total, 1)
        y = 28 + i * (bar + gap)
        bars.append({**p, "y": y, "text_y": y + bar - 5, "x0": label_w, "w_safe": w_safe, "x1": label_w + w_safe,
                     "w_dm": w_dm, "x2": label_w + w_safe + w_dm, "w_rest": round(plot - w_safe - w_dm, 1),
                     "pct": round(100 * p["safe"] / total), "href": href(p["town"])})
    return {"width": width, "height": 36 + len(bars) * (bar + gap), "bar": bar, "label_w": label_w, "plot": plot,
            "bars": bars, "num_x": label_w + plot + 8}


def chart_svg(c: dict[str, Any]) -> Markup:
    """The one drawing of the per-町字 chart (the shelter's /hq page and the hub's chart.svg): SVG
    markup from :func:`chart_geometry`, every text escaped; a standalone document too (xmlns)."""
    e = escape
    ok, dm, rest = CHART_COLOURS
    lw = c["label_w"]
    out = [f'<svg id="town-chart" xmlns="http://www.w3.org/2000/svg" class="hq-chart" role="img" '
           f'aria-labelledby="town-chart-title" width="{c["width"]}" height="{c["height"]}" '
           f'viewBox="0 0 {c["width"]} {c["height"]}">',
           '<title id="town-chart-title">町字ごとの確認済み・未確認の人数</title>',
           '<g class="legend" font-size="12">'
           f'<rect x="{lw}" y="6" width="12" height="12" fill="{ok}"/><text x="{lw + 16}" y="16">確認済み</text>'
           f'<rect x="{lw + 90}" y="6" width="12" height="12" fill="{dm}"/>'
           f'<text x="{lw + 106}" y="16">死亡・行方不明</text>'
           f'<rect x="{lw + 220}" y="6" width="12" height="12" fill="{rest}"/><text x="{lw + 236}" y="16">未確認</text>'
           '</g>']
    for b in c["bars"]:
        out.append(
            f'<a href="{e(b["href"])}" class="bar-link" data-town="{e(b["town"])}">'
            f'<title>{e(b.get("label") or b["town"])}: 確認済み {b["safe"]} / 死亡・行方不明 {b["dead_missing"]} / '
            f'未確認 {b["unconfirmed"]}（計 {b["total"]}人）</title>'
            f'<text x="{lw - 6}" y="{b["text_y"]}" text-anchor="end" font-size="12">{e(b.get("label") or b["town"])}</text>'
            f'<rect class="bar-safe" x="{b["x0"]}" y="{b["y"]}" width="{b["w_safe"]}" height="{c["bar"]}" fill="{ok}"/>'
            f'<rect class="bar-dm" x="{b["x1"]}" y="{b["y"]}" width="{b["w_dm"]}" height="{c["bar"]}" fill="{dm}"/>'
            f'<rect class="bar-rest" x="{b["x2"]}" y="{b["y"]}" width="{b["w_rest"]}" height="{c["bar"]}" '
            f'fill="{rest}"/>'
            f'<text x="{c["num_x"]}" y="{b["text_y"]}" font-size="12">{b["safe"]} / {b["total"]}人（{b["pct"]}%）</text>'
            '</a>')
    if not c["bars"]:
        out.append(f'<text x="{lw}" y="32" font-size="12">該当する住民はいません。</text>')
    out.append("</svg>")
    return Markup("".join(out))


def chart(progress: list[dict[str, Any]], params: Params, **geometry: int) -> dict[str, Any]:
    """The shelter's chart: bars lead to /hq filtered to the 町字 (keeping the other filters);
    ``svg`` is the drawing (:func:`chart_svg`)."""
    c = chart_geometry(progress, lambda town: "/hq?" + Params(
        town, params.household, params.age_band, params.care_only, params.status, name=params.name).query(), **geometry)
    c["svg"] = chart_svg(c) if c["bars"] else Markup("")
    return c


def _row_view(r: al.AnpiRow, gaiji: dict[str, str]) -> dict[str, Any]:
    return {"r": r, "name": al.display_text(r.name, gaiji), "kana": r.kana, "address": al.display_text(r.address, gaiji),
            "birth": r.birth_date.isoformat() if r.birth_date else r.birth_raw, "when": al.local_text(r.confirmed_at),
            "detail": al.display_text(r.detail, gaiji)}


def _page(request: Request, session: Session, user: CurrentUser, params: Params, page: int, *, rec: str = "",
          done: str = "", error: str = "", error_field: str = "", form: dict[str, str] | None = None,
          status_code: int = 200) -> HTMLResponse:
    reveal = user.can("restricted")
    towns = al.town_choices(session, include_restricted=reveal)
    try:
        lst = al.build_anpi_list(session, filters=params.filters(), include_restricted=reveal)
    except InvalidInput as exc:  # a town typed in the URL that does not exist: show everything, say why
        error, error_field, status_code = exc.message_ja, exc.field, 422
        lst = al.build_anpi_list(session, filters=al.AnpiFilter(), include_restricted=reveal)
        params = Params()
    rows, page, pages = lst.page(page, params.per_page)
    record_for = None
    if rec:
        record_for = next((r for r in lst.rows if r.resident_id == rec), None)
        if record_for is None:
            found = al.build_anpi_list(session, include_restricted=reveal)
            record_for = next((r for r in found.rows if r.resident_id == rec), None)
    history = al.hq_history(session, record_for.resident_id) if record_for else []
    subjects = [f"resident:{r.resident_id}" for r in rows] + ([f"resident:{record_for.resident_id}"] if record_for else [])
    audit_view(session, request, user, "view", subjects=subjects,
               detail={"list": "anpi-list", "filters": lst.filters.as_dict(), "page": page, "rows": len(lst.rows),
                       "restricted_shown": sum(1 for r in rows if r.restricted)})
    session.commit()
    return render(request, "hq.html", {
        "lst": lst, "rows": [_row_view(r, lst.gaiji_map) for r in rows], "page": page, "pages": pages,
        "per_page": params.per_page, "p": params, "towns": towns, "statuses": al.STATUS_JA, "age_bands": list(al.AGE_BANDS),
        "chart": chart(lst.town_progress(), params), "exports": EXPORTS, "methods": al.METHODS,
        "hq_statuses": al.HQ_STATUS_JA, "record_for": _row_view(record_for, lst.gaiji_map) if record_for else None,
        "history": history, "done": DONE_JA.get(done, ""), "error": error, "error_field": error_field,
        "form": form or {}, "reveal": reveal, "safe_total": sum(lst.counts[s] for s in al.SAFE),
        "qs": params.query(), "rec": rec, "export_count": sum(1 for r in lst.rows if not r.restricted),
    }, status_code=status_code)


@router.get("/hq", response_class=HTMLResponse)
def hq_page(request: Request, town: str = "", household: str = "", age_band: str = "", care_only: str = "",
            status: str = "", page: int = 1, per_page: int = PER_PAGE, rec: str = "", done: str = "", name: str = "",
            user: CurrentUser = Depends(require("hq.list")), session: Session = Depends(db)) -> HTMLResponse:
    params = _params(town, household, age_band, care_only, status, name)
    params.per_page = max(1, min(per_page, 500))
    error = field = ""
    if params.age_band and params.age_band not in al.AGE_BANDS:
        error, field, params.age_band = "年齢区分が正しくありません", "age_band", ""
    if params.status and params.status not in al.STATUS_JA and params.status != "safe":
        error, field, params.status = "状態の指定が正しくありません", "status", ""
    return _page(request, session, user, params, page, rec=rec.strip(), done=done, error=error, error_field=field,
                 status_code=422 if error else 200)


@router.post("/hq/confirm", response_class=HTMLResponse)
def hq_confirm(request: Request, resident_id: str = Form(""), status: str = Form(""), method: str = Form(""),
               note: str = Form(""), back: str = Form(""), user: CurrentUser = Depends(require("hq.confirm")),
               session: Session = Depends(db)) -> Response:
    from urllib.parse import parse_qs

    q = {k: v[0] for k, v in parse_qs(back).items()}
    params = _params(q.get("town", ""), q.get("household", ""), q.get("age_band", ""), q.get("care_only", ""),
                     q.get("status", ""), q.get("name", ""))
    page = int(q["page"]) if q.get("page", "").isdigit() else 1
    if q.get("per_page", "").isdigit():
        params.per_page = max(1, min(int(q["per_page"]), 500))
    try:
        rec = al.record_hq_confirmation(session, resident_id, status, method, note, user, screen=screen(request))
        session.commit()
    except AnpiError as exc:
        session.rollback()
        form = {"resident_id": resident_id, "status": status, "method": method, "note": note}
        return _page(request, session, user, params, page, rec=resident_id.strip(), error=exc.message_ja,
                     error_field=getattr(exc, "field", "") or "resident_id", form=form, status_code=422)
    return redirect("/hq?" + params.query(page=page if page > 1 else "", rec=rec.resident_id, done=rec.status)
                    + "#record")


@router.get("/hq/export")
def hq_export(request: Request, format: str = "csv", encoding: str = "utf-8-sig", report: str = "",  # noqa: A002
              town: str = "", household: str = "", age_band: str = "", care_only: str = "", status: str = "",
              user: CurrentUser = Depends(require("export")), session: Session = Depends(db)) -> Response:
    """The list as a file download (audited by the service); report=1 gives the replacement report instead."""
    params = _params(town, household, age_band, care_only, status)
    fmt = format.strip().lower()
    enc = encoding if fmt == "csv" else ""
    stamp = datetime.now().astimezone().strftime("%Y%m%d-%H%M")
    name = f"anpi-list-{stamp}{'-cp932' if enc == 'cp932' else ''}.{_SUFFIX.get(fmt, 'bin')}"
    with tempfile.TemporaryDirectory(prefix="anpi-hq-") as tmp:
        out = Path(tmp) / name
        o = al.export_anpi_list(session, out, fmt=fmt, encoding=(enc or "utf-8-sig") if fmt == "csv" else "",
                                filters=params.filters() if fmt != "pfif" else None, by=user, screen=screen(request),
                                write_summary=False)
        session.commit()
        n_rep = len(o.result.replacements) if o.result else 0
        headers = {"X-Anpi-Rows": str(o.rows), "X-Anpi-Restricted-Excluded": str(o.restricted_excluded),
                   "X-Anpi-Replacements": str(n_rep)}
        if report in ("1", "true"):
            from app.formats.anpi_list_export import replacement_report_bytes, report_path_for

            body = replacement_report_bytes(o.result.replacements if o.result else [])
            rname = report_path_for(out).name
            return Response(body, media_type="text/csv; charset=utf-8", headers={
                **headers, "Content-Disposition": f'attachment; filename="{rname}"'})
        body = out.read_bytes()
    media = _MEDIA.get(fmt, "application/octet-stream")
    if fmt == "csv":
        media += "; charset=" + ("shift_jis" if enc == "cp932" else "utf-8")
    return Response(body, media_type=media, headers={**headers, "Content-Disposition": f'attachment; filename="{name}"'})
