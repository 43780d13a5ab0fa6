"""HQ's desk at the hub: the safety list, records typed at HQ, the list as a file (thin faces over app/hub_export).

Routes (``Authorization: Bearer <token>`` of an HQ user):

- ``GET  /v1/hq/anpi-list``  the safety list (HQ's internal view, 閲覧制限 people included and marked):
  every resident of the newest registry backup with the shelter list's status (避難所で確認 / 退所 /
  他の手段で確認 / 死亡 / 行方不明 / 未確認), built by the shelter's ``build_rows``; filters ``town``
  (repeatable; a 町字 or a whole address), ``household``, ``age_band``, ``care=1``, ``status`` (a code,
  its Japanese label, or ``safe``); ``limit``/``offset`` page the rows, the counts cover them all.
  ``{"snapshot", "filters", "total", "safe", "counts", "town_counts", "rows": [{…, "status",
  "status_ja", "safe", "where", "care", "hq"}]}``; every answer is audited ``hq.viewed``.
- ``POST /v1/hq/anpi-list/{resident_id}/records``  ``{"status": "confirmed_other"|"dead"|"missing"|"withdrawn",
  "method": "電話"|"訪問"|"その他", "note": …}`` — a record typed at the hub (audited ``hq.recorded``)
- ``GET  /v1/hq/anpi-list/{resident_id}/records``  the resident's HQ history (laptops' and the hub's)
- ``GET  /v1/hq/anpi-list/export?format=csv|xlsx|pdf&encoding=utf-8-sig|cp932``  the list as a download,
  with the list's filters (``town`` repeatable, ``household``, ``age_band``, ``care=1``, ``status``);
  ``report=1`` answers the replacement report (characters the format could not hold) instead.
  閲覧制限 residents are never in the file; audited ``export.anpi_list``.

Errors come back in the one shape of every route (``sync.http_errors``); bad input names its field
(``{"error": "bad_request", "detail": "method: …"}``; this desk answers a bad value 400, as it always has).
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine

from sync.errors import DataKeyError, HubConflict, HubNotFound
from sync.hub import tenants
from sync.hub.bodies import Body, parse
from sync.hub.hq import HqCaller

if TYPE_CHECKING:
    from app.services.anpi_list import AnpiFilter

_MEDIA = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          "pdf": "application/pdf"}


def translated(fn: Callable[[tenants.HqUser], Any]) -> Callable[[tenants.HqUser], Any]:
    """The services' exceptions as the hub's (which ``HqCaller`` answers): bad input names its field."""
    from app.services.errors import AnpiError, Conflict, InvalidInput, NotFound

    def run(u: tenants.HqUser) -> Any:
        try:
            return fn(u)
        except InvalidInput as exc:
            raise ValueError(f"{exc.field}: {exc}" if exc.field else str(exc)) from None
        except NotFound:
            raise HubNotFound("not found") from None
        except Conflict as exc:
            raise HubConflict(str(exc)) from None
        except AnpiError as exc:
            raise ValueError(str(exc)) from None
        # FontMissing passes: it answers 503 font_missing itself (the hub cannot write PDFs without the font)
    return run


class HqRecordBody(Body):
    """``POST /v1/hq/anpi-list/{resident_id}/records`` (values checked by ``hub_export.record_hq``)."""

    status: str | None = None
    method: str | None = None
    note: str | None = None


def _flag(value: str) -> bool:
    """A query-string switch (``care=1``, ``report=1``): anything else is off."""
    return value.strip().lower() in ("1", "true", "yes", "on")


def list_filters(request: Request, household: str = "", age_band: str = "", care: str = "",
                 status: str = "") -> AnpiFilter:
    """The list's filters from a query string (``town`` repeatable, ``household``, ``age_band``,
    ``care=1``, ``status``) — one reading for every hub route that shows or draws the list; the
    values are checked by ``build_rows`` (InvalidInput naming the field, see :func:`translated`)."""
    from app.services.anpi_list import AnpiFilter

    towns = tuple(t for t in request.query_params.getlist("town") if t.strip())
    return AnpiFilter(towns=towns, household=household.strip(), age_band=age_band.strip(),
                      care_only=_flag(care), status=status.strip())


def router(engine: Engine, caller: HqCaller, data_key: Callable[[], Any]) -> APIRouter:
    from app import hub_export

    r = APIRouter()

    @r.get("/v1/hq/anpi-list")
    async def anpi_list(request: Request, household: str = "", age_band: str = "", care: str = "",
                        status: str = "", limit: int = 1000, offset: int = 0) -> JSONResponse:
        filters = list_filters(request, household, age_band, care, status)

        def fn(u: tenants.HqUser) -> Response:
            # encoded by hub_export (rows' JSON kept with a cached list); the same bytes JSONResponse writes
            return Response(hub_export.list_json_bytes(engine, data_key(), u.municipality_code, filters, limit=limit,
                                                       offset=offset), media_type="application/json")
        return await caller.call(request, translated(fn), personal=True)

    @r.get("/v1/hq/anpi-list/export")
    async def export(request: Request, format: str = "csv", encoding: str = "utf-8-sig",  # noqa: A002
                     household: str = "", age_band: str = "", care: str = "", status: str = "",
                     report: str = "") -> Response:
        filters = list_filters(request, household, age_band, care, status)

        def fn(u: tenants.HqUser) -> Response:
            key = data_key()
            if key is None:
                raise DataKeyError("the hub has no data key configured: the registry backup cannot be read")
            fmt, enc = hub_export.check_format(format, encoding if format.strip().lower() == "csv" else "")
            stamp = datetime.now().astimezone().strftime("%Y%m%d-%H%M")
            name = f"anpi-list-{u.municipality_code}-{stamp}{'-cp932' if enc == 'cp932' else ''}.{fmt}"
            with tempfile.TemporaryDirectory(prefix="anpi-hub-hq-") as tmp:
                out = Path(tmp) / name
                o = hub_export.export_anpi_list(engine, key, u.municipality_code, out, fmt=fmt, encoding=enc,
                                                by=f"hq:{u.name}", filters=filters, write_summary=False,
                                                route=f"GET {request.url.path}")
                headers = {"X-Anpi-Rows": str(o.rows), "X-Anpi-Restricted-Excluded": str(o.restricted_excluded),
                           "X-Anpi-Replacements": str(len(o.result.replacements))}
                if _flag(report):
                    from app.formats.anpi_list_export import replacement_report_bytes, report_path_for

                    return Response(replacement_report_bytes(o.result.replacements),
                                    media_type="text/csv; charset=utf-8",
                                    headers={**headers, "Content-Disposition":
                                             f'attachment; filename="{report_path_for(out).name}"'})
                body = out.read_bytes()
            media = _MEDIA[fmt]
            if fmt == "csv":
                media += "; charset=" + ("shift_jis" if enc == "cp932" else "utf-8")
            return Response(body, media_type=media,
                            headers={**headers, "Content-Disposition": f'attachment; filename="{name}"'})
        return await caller.call(request, translated(fn))

    @r.post("/v1/hq/anpi-list/{resident_id}/records")
    async def add_record(request: Request, resident_id: str) -> JSONResponse:
        raw = await request.body()

        def fn(u: tenants.HqUser) -> dict[str, Any]:
            body = parse(HqRecordBody, raw)
            rec = hub_export.record_hq(engine, data_key(), u.municipality_code, resident_id, body.status or "",
                                       body.method or "", body.note or "", by=u.name, actor=f"hq:{u.name}")
            return {"record": rec}
        return await caller.call(request, translated(fn))

    @r.get("/v1/hq/anpi-list/{resident_id}/records")
    async def history(request: Request, resident_id: str) -> JSONResponse:
        def fn(u: tenants.HqUser) -> dict[str, Any]:
            records = hub_export.hq_history(engine, u.municipality_code, resident_id)
            in_force = next((x for x in records if x["in_force"]), None)
            return {"resident_id": resident_id, "records": records, "in_force": in_force}
        return await caller.call(request, fn, personal=True)

    return r
