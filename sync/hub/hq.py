"""What a municipality's HQ (災害対策本部) sees at the hub, and its JSON routes.

Every function takes the caller's municipality and reads only that tenant (the queries filter
on it, and the transaction states it for the row-level security policies).  Ids of another
municipality answer exactly like ids that do not exist (404 ``not_found``), so no route, export
or error message confirms that another town's record exists.

Routes (``Authorization: Bearer <token>`` of an HQ user, see ``anpi hub user add``):

- ``GET  /v1/hq/whoami``            the user and their municipality
- ``GET  /v1/hq/status``            counts for the municipality (as ``anpi hub status``) + registry and cross-town
- ``GET  /v1/hq/anpi-list``         safety list: every resident of the newest registry backup, safe or not yet
- ``GET  /v1/hq/evacuees``          evacuees at the municipality's shelters
- ``GET  /v1/hq/evacuees/{id}``     one of them, with stays and decisions
- ``GET  /v1/hq/found-elsewhere``   the municipality's residents found at other towns' shelters
- ``GET  /v1/hq/review``            open review items (field conflicts, cross-town candidates)
- ``POST /v1/hq/review/{item_id}``  ``{"decision": "confirmed"|"rejected", "resident_id": …}`` (cross-town items)
- ``GET  /v1/hq/shares``            agreements the municipality is part of
- ``GET  /v1/hq/registry``          registry backups held for it (metadata)
- ``GET  /v1/hq/devices``           (admin) its shelter laptops
- ``GET  /v1/hq/audit``             (admin) its audit log
"""
from __future__ import annotations

import json
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool

from sync.errors import AuthError, DataKeyError, HubConflict, HubNotFound, RegistryError, SyncError
from sync.hub import audit, crossmatch, registry, store, tenants
from sync.hub.registry import DataKey
from sync.hub.store import (
    hub_cross_link, hub_decision, hub_device, hub_evacuee, hub_person_link, hub_review_item, hub_stay,
    municipality_names, set_tenant,
)

SAFE = "safe"
UNCONFIRMED = "unconfirmed"


# ---- queries -------------------------------------------------------------------------------------
def hq_status(engine: Engine, m: str) -> dict[str, Any]:
    with engine.connect() as conn:
        set_tenant(conn, m)
        out: dict[str, Any] = {"municipality_code": m, "municipality_name": municipality_names(conn).get(m)}
        out.update(store._status_one(conn, m))
        snap = registry.latest_snapshot(conn, m)
        out["snapshot"] = ({"snapshot_id": snap.snapshot_id, "as_of": snap.as_of, "residents": snap.row_count}
                           if snap else None)
        set_tenant(conn, m)
        out["found_elsewhere"] = int(conn.execute(select(func.count()).select_from(hub_cross_link).where(
            hub_cross_link.c.municipality_code == m, hub_cross_link.c.linked.is_(True))).scalar_one())
        out["cross_town_review"] = int(conn.execute(select(func.count()).select_from(hub_review_item).where(
            hub_review_item.c.municipality_code == m, hub_review_item.c.kind == "cross_match",
            hub_review_item.c.status == "open")).scalar_one())
    return out


def _shelters(conn: Connection, m: str) -> dict[str, str]:
    return {r[0]: (r[1] or r[2]) for r in conn.execute(select(
        hub_device.c.device_id, hub_device.c.shelter_name, hub_device.c.name).where(
        hub_device.c.municipality_code == m, hub_device.c.device_id.is_not(None))).all()}


def safety_index(conn: Connection, m: str) -> dict[str, dict[str, Any]]:
    """resident_id → where the municipality's resident was found safe (own shelters or another town's)."""
    set_tenant(conn, m)
    names = municipality_names(conn)
    shelters = _shelters(conn, m)
    found: dict[str, dict[str, Any]] = {}
    q = (select(hub_person_link.c.resident_id, hub_person_link.c.evacuee_id, hub_person_link.c.linked_at,
                hub_evacuee.c.status, hub_evacuee.c.current_shelter_code, hub_evacuee.c.shelter_code,
                hub_evacuee.c.device_id, hub_evacuee.c.registered_at, hub_evacuee.c.last_stay_key,
                hub_evacuee.c.care)
         .join(hub_evacuee, (hub_evacuee.c.municipality_code == hub_person_link.c.municipality_code)
               & (hub_evacuee.c.evacuee_id == hub_person_link.c.evacuee_id), isouter=True)
         .where(hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None),
                hub_person_link.c.resident_municipality.is_(None) | (hub_person_link.c.resident_municipality == m)))
    for r in conn.execute(q).mappings():
        found.setdefault(str(r["resident_id"]), {
            "evacuee_id": r["evacuee_id"], "municipality_code": m, "municipality_name": names.get(m),
            "shelter_code": r["current_shelter_code"] or r["shelter_code"],
            "shelter_name": shelters.get(r["device_id"] or ""), "evacuee_status": r["status"],
            "since": r["registered_at"], "last_stay_at": (r["last_stay_key"] or "").split("|")[0] or None,
            "care": json.loads(r["care"] or "{}"), "how": "own shelter"})
    for r in conn.execute(select(hub_cross_link).where(hub_cross_link.c.municipality_code == m,
                                                       hub_cross_link.c.linked.is_(True))).mappings():
        found.setdefault(str(r["resident_id"]), {
            "evacuee_id": r["evacuee_id"], "municipality_code": r["host_code"],
            "municipality_name": names.get(r["host_code"]), "shelter_code": r["shelter_code"],
            "shelter_name": r["shelter_name"], "evacuee_status": r["status"], "since": r["registered_at"],
            "last_stay_at": None, "care": {}, "how": f"cross-town ({r['decision']})"})
    return found


def anpi_list_rows(engine: Engine, key: DataKey | None, m: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(snapshot info, one row per resident of the newest registry backup) for HQ."""
    if key is None:
        raise DataKeyError("the hub has no data key configured: the registry backup cannot be read")
    with engine.connect() as conn:
        snap = registry.latest_snapshot(conn, m)
        if snap is None:
            raise RegistryError("no registry backup for this municipality at the hub yet")
        found = safety_index(conn, m)
    rec = registry.open_records(engine, key, m, snap)
    rows = []
    for d in registry.iter_rows(rec):
        rid = str(d["resident_id"])
        where = found.get(rid)
        rows.append({
            "resident_id": rid, "household_id": d.get("household_id") or "",
            "name": "　".join(x for x in (d.get("family_name"), d.get("given_name")) if x),
            "name_kana": " ".join(x for x in (d.get("family_name_kana"), d.get("given_name_kana")) if x),
            "alpha_name": d.get("alpha_name") or "", "birth_date": d.get("birth_date") or "",
            "sex": d.get("sex") or "", "address": d.get("address") or "", "restricted": bool(d.get("restricted")),
            "status": SAFE if where else UNCONFIRMED, "where": where})
    return snap.as_dict(), rows


def _evacuee_rows(conn: Connection, m: str, where: Any = None, limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
    shelters = _shelters(conn, m)
    q = select(hub_evacuee).where(hub_evacuee.c.municipality_code == m, hub_evacuee.c.registered.is_(True))
    if where is not None:
        q = q.where(where)
    rows = [dict(r) for r in conn.execute(q.order_by(hub_evacuee.c.registered_at, hub_evacuee.c.evacuee_id)
                                          .limit(limit).offset(offset)).mappings()]
    ids = [r["evacuee_id"] for r in rows]
    links = {}
    if ids:
        for r in conn.execute(select(hub_person_link.c.evacuee_id, hub_person_link.c.resident_id).where(
                hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None),
                crossmatch._in(conn, hub_person_link.c.evacuee_id, ids))).all():
            links[r[0]] = r[1]
    elsewhere = crossmatch.latest_notices(conn, m, ids)
    out = []
    for r in rows:
        n = elsewhere.get(r["evacuee_id"])
        out.append({"evacuee_id": r["evacuee_id"], "external_key": r["external_key"], "name": r["name"],
                    "name_kana": r["name_kana"], "birth_date": r["birth_date"] or r["birth_date_raw"], "sex": r["sex"],
                    "address": r["address"], "phone": r["phone"], "status": r["status"],
                    "shelter_code": r["current_shelter_code"] or r["shelter_code"],
                    "shelter_name": shelters.get(r["device_id"] or ""), "registered_at": r["registered_at"],
                    "resident_id": links.get(r["evacuee_id"]), "withheld": bool(r["withheld"]),
                    "resident_of": ({"municipality_code": n["home_municipality_code"],
                                     "municipality_name": n["home_municipality_name"], "label": n["label"],
                                     "resident": n.get("resident") or {}} if n else None)})
    return out


def evacuees(engine: Engine, m: str, limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        set_tenant(conn, m)
        return _evacuee_rows(conn, m, limit=max(1, min(limit, 5000)), offset=max(0, offset))


def evacuee_detail(engine: Engine, m: str, evacuee_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        set_tenant(conn, m)
        rows = _evacuee_rows(conn, m, hub_evacuee.c.evacuee_id == evacuee_id, limit=1)
        if not rows:
            raise HubNotFound("not found")
        out = rows[0]
        out["stays"] = [{k: r[k] for k in ("stay_id", "kind", "shelter_code", "destination", "at")} for r in conn.execute(
            select(hub_stay).where(hub_stay.c.municipality_code == m, hub_stay.c.evacuee_id == evacuee_id)
            .order_by(hub_stay.c.at, hub_stay.c.stay_id)).mappings()]
        out["decisions"] = [{k: r[k] for k in ("decision_id", "decision", "resident_id", "score", "reasons", "by_user",
                                               "at")} for r in conn.execute(
            select(hub_decision).where(hub_decision.c.municipality_code == m, hub_decision.c.evacuee_id == evacuee_id)
            .order_by(hub_decision.c.at, hub_decision.c.decision_id)).mappings()]
    return out


def found_elsewhere(engine: Engine, m: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        names = municipality_names(conn)
        rows = crossmatch.links_of_home(conn, m)
    return [{"evacuee_id": r["evacuee_id"], "host": r["host_code"], "host_name": names.get(r["host_code"]),
             "resident_id": r["resident_id"], "decision": r["decision"], "linked": bool(r["linked"]),
             "probability": r["probability"], "reasons": r["reasons"], "shelter_name": r["shelter_name"],
             "status": r["status"], "evacuee": {"name": r["ev_name"], "name_kana": r["ev_name_kana"],
                                                "birth_date": r["ev_birth"], "sex": r["ev_sex"],
                                                "address": r["ev_address"]},
             "restricted": bool(r["restricted"])} for r in rows]


def review_items(engine: Engine, m: str, status: str = "open") -> list[dict[str, Any]]:
    with engine.connect() as conn:
        set_tenant(conn, m)
        rows = conn.execute(select(hub_review_item).where(hub_review_item.c.municipality_code == m,
                                                          hub_review_item.c.status == status)
                            .order_by(hub_review_item.c.created_at)).mappings().all()
    return [{"item_id": r["item_id"], "kind": r["kind"], "evacuee_id": r["evacuee_id"], "field": r["field"],
             "status": r["status"], "detail": json.loads(r["candidates"]),
             "created_at": r["created_at"].isoformat(timespec="seconds")} for r in rows]


# ---- the calling convention of every /v1/hq route (also used by app/'s hub desk routes) -----------
def answer(exc: Exception) -> JSONResponse:
    """Our exceptions as JSON answers (the same shapes on every /v1/hq route)."""
    if isinstance(exc, AuthError):
        return JSONResponse({"error": exc.reason, "detail": exc.detail}, status_code=exc.status)
    if isinstance(exc, HubNotFound):
        return JSONResponse({"error": "not_found", "detail": "not found"}, status_code=404)
    if isinstance(exc, HubConflict):
        return JSONResponse({"error": "conflict", "detail": str(exc)}, status_code=409)
    if isinstance(exc, DataKeyError):
        return JSONResponse({"error": "no_data_key", "detail": str(exc)}, status_code=503)
    if isinstance(exc, RegistryError):
        return JSONResponse({"error": "no_registry", "detail": str(exc)}, status_code=409)
    return JSONResponse({"error": "bad_request", "detail": str(exc)}, status_code=400)


class HqCaller:
    """Authenticate the bearer token, check the role, run ``fn(user)`` in a worker thread, audit
    looks at personal data, and turn our exceptions into JSON answers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def viewed(self, user: tenants.HqUser, request: Request) -> None:
        """Every look at personal data is written to the municipality's audit log."""
        with self.engine.begin() as conn:
            audit.record(conn, user.municipality_code, actor=f"hq:{user.name}", action="hq.viewed",
                         detail={"route": request.url.path, "query": request.url.query})

    async def user(self, request: Request, perm: str = "hq") -> tenants.HqUser:
        user = await run_in_threadpool(tenants.authenticate_user, self.engine, request.headers.get("authorization"))
        if not user.can(perm):
            raise AuthError("forbidden", f"this needs an account with the {perm!r} role", 403)
        return user

    async def call(self, request: Request, fn: Callable[[tenants.HqUser], Any], *, perm: str = "hq",
                   personal: bool = False) -> Any:
        """``fn``'s result as JSON (a Response from ``fn`` is passed through, e.g. a file)."""
        try:
            user = await self.user(request, perm)
            result = await run_in_threadpool(fn, user)
            if personal:
                await run_in_threadpool(self.viewed, user, request)
        except (SyncError, ValueError, KeyError, TypeError) as exc:
            return answer(exc)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)


# ---- routes --------------------------------------------------------------------------------------
def hq_router(engine: Engine, data_key: Callable[[], DataKey | None]) -> Any:
    """FastAPI router for ``/v1/hq/…`` (bearer-token HQ users)."""
    router = APIRouter()

    caller = HqCaller(engine)
    call = caller.call

    @router.get("/v1/hq/whoami")
    async def whoami(request: Request) -> JSONResponse:
        def fn(u: tenants.HqUser) -> dict[str, Any]:
            with engine.connect() as conn:
                name = municipality_names(conn).get(u.municipality_code)
            return {"name": u.name, "role": u.role, "municipality_code": u.municipality_code,
                    "municipality_name": name}
        return await call(request, fn, perm="desk")

    @router.get("/v1/hq/status")
    async def status(request: Request) -> JSONResponse:
        return await call(request, lambda u: hq_status(engine, u.municipality_code))

    @router.get("/v1/hq/anpi-list")
    async def anpi_list(request: Request, status: str = "", limit: int = 1000, offset: int = 0) -> JSONResponse:
        def fn(u: tenants.HqUser) -> dict[str, Any]:
            snap, rows = anpi_list_rows(engine, data_key(), u.municipality_code)
            if status:
                rows = [r for r in rows if r["status"] == status]
            total = len(rows)
            counts = {SAFE: sum(1 for r in rows if r["status"] == SAFE)}
            page = rows[max(0, offset):max(0, offset) + max(1, min(limit, 10000))]
            return {"snapshot": snap, "total": total, "safe": counts[SAFE], "rows": page}
        return await call(request, fn, personal=True)

    @router.get("/v1/hq/evacuees")
    async def evacuee_list(request: Request, limit: int = 500, offset: int = 0) -> JSONResponse:
        return await call(request, lambda u: {"evacuees": evacuees(engine, u.municipality_code, limit, offset)},
                          personal=True)

    @router.get("/v1/hq/evacuees/{evacuee_id}")
    async def evacuee_one(request: Request, evacuee_id: str) -> JSONResponse:
        return await call(request, lambda u: evacuee_detail(engine, u.municipality_code, evacuee_id),
                          personal=True)

    @router.get("/v1/hq/found-elsewhere")
    async def elsewhere(request: Request) -> JSONResponse:
        return await call(request, lambda u: {"found": found_elsewhere(engine, u.municipality_code)},
                          personal=True)

    @router.get("/v1/hq/review")
    async def review(request: Request) -> JSONResponse:
        return await call(request, lambda u: {"items": review_items(engine, u.municipality_code)},
                          personal=True)

    @router.post("/v1/hq/review/{item_id}")
    async def decide(request: Request, item_id: str) -> JSONResponse:
        raw = await request.body()

        def fn(u: tenants.HqUser) -> dict[str, Any]:
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise HubConflict("body must be JSON") from None
            if not isinstance(body, dict):
                raise HubConflict("body must be a JSON object")
            return crossmatch.resolve_review(engine, data_key(), u.municipality_code, item_id,
                                             decision=str(body.get("decision", "")),
                                             resident_id=body.get("resident_id"), by=f"hq:{u.name}")
        return await call(request, fn)

    @router.get("/v1/hq/shares")
    async def shares(request: Request) -> JSONResponse:
        def fn(u: tenants.HqUser) -> dict[str, Any]:
            with engine.connect() as conn:
                return {"shares": tenants.shares_of(conn, u.municipality_code)}
        return await call(request, fn)

    @router.get("/v1/hq/registry")
    async def snapshots(request: Request) -> JSONResponse:
        def fn(u: tenants.HqUser) -> dict[str, Any]:
            with engine.connect() as conn:
                return {"snapshots": [s.as_dict() for s in registry.list_snapshots(conn, u.municipality_code)]}
        return await call(request, fn)

    @router.get("/v1/hq/devices")
    async def devices(request: Request) -> JSONResponse:
        def fn(u: tenants.HqUser) -> dict[str, Any]:
            rows = store.list_devices(engine, u.municipality_code)
            return {"devices": [{k: (v.isoformat(timespec="seconds") if hasattr(v, "isoformat") else v)
                                 for k, v in r.items()} for r in rows]}
        return await call(request, fn, perm="admin")

    @router.get("/v1/hq/audit")
    async def audit_log(request: Request, limit: int = 200) -> JSONResponse:
        def fn(u: tenants.HqUser) -> dict[str, Any]:
            with engine.connect() as conn:
                return {"entries": audit.entries(conn, u.municipality_code, max(1, min(limit, 5000))),
                        "broken_at": audit.verify(conn, u.municipality_code)}
        return await call(request, fn, perm="admin")

    return router
