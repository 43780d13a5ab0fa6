"""What a municipality's HQ (災害対策本部) sees at the hub, and its JSON routes.

Every function takes the caller's municipality and reads only that tenant (the queries filter
on it, and the transaction states it for the row-level security policies).  Ids of another
municipality answer exactly like ids that do not exist (404 ``not_found``), so no route, export
or error message confirms that another town's record exists.

Routes (``Authorization: Bearer <token>`` of an HQ user, see ``anpi hub user add``):

- ``GET  /v1/hq/whoami``            the user and their municipality
- ``GET  /v1/hq/status``            counts for the municipality (as ``anpi hub status``) + registry and cross-town
- ``GET  /v1/hq/evacuees``          evacuees at the municipality's shelters
- ``GET  /v1/hq/evacuees/{id}``     one of them, with stays and decisions
- ``GET  /v1/hq/found-elsewhere``   the municipality's residents found at other towns' shelters
- ``GET  /v1/hq/review``            open review items (field conflicts, cross-town candidates)
- ``POST /v1/hq/review/{item_id}``  ``{"decision": "confirmed"|"rejected", "resident_id": …}`` (cross-town items)
                                    or ``{"decision": "value", "event_id": …}`` (field conflicts: that value wins)
- ``GET  /v1/hq/shares``            agreements the municipality is part of
- ``GET  /v1/hq/registry``          registry backups held for it (metadata)
- ``GET  /v1/hq/devices``           (admin) its shelter laptops
- ``GET  /v1/hq/audit``             (admin) its audit log

The safety list (``GET /v1/hq/anpi-list`` and its files, HQ records, history) is built by the
shelter's list logic in ``app/`` (``app.hub_export``, routes in ``app/api/hub/hq_desk.py``, served by
``app.hub_app``): ``sync/`` may not import ``app/`` (ARCHITECTURE.md §8), so this module only hands it the
hub's data — :func:`list_inputs`, :func:`stays_index`, :func:`hq_record_rows` — and keeps no copy of
the list's statuses, filters or order.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool

from sync.errors import AuthError, DataKeyError, HubConflict, HubNotFound, RegistryError
from sync.hub import audit, bodies, crossmatch, forks, registry, store, tenants
from sync.hub.registry import DataKey
from sync.http_errors import answerable, error_answer
from sync.hub.store import (
    hub_cross_link, hub_decision, hub_device, hub_evacuee, hub_hq_record, hub_person_link, hub_review_item,
    hub_stay, municipality_names, set_tenant,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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


def shelter_names(conn: Connection, m: str) -> dict[str, str]:
    """device id → the shelter's name (or the device's) for one municipality's laptops."""
    return {r[0]: (r[1] or r[2] or "") for r in conn.execute(select(
        hub_device.c.device_id, hub_device.c.shelter_name, hub_device.c.name).where(
        hub_device.c.municipality_code == m, hub_device.c.device_id.is_not(None))).all()}


def parse_time(text: Any) -> datetime | None:
    """ISO text (hub tables keep shelters' times as events carried them) or a datetime → an aware
    datetime (naive ones are UTC); None when absent or unreadable."""
    if isinstance(text, datetime):
        dt = text
    elif not text:
        return None
    else:
        try:
            dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def stays_index(conn: Connection, m: str) -> dict[str, list[dict[str, Any]]]:
    """resident_id → every evacuee linked to the municipality's resident: at its own shelters (a
    linking decision not revoked) and at other towns' shelters (cross-town links).

    Each stay: evacuee_id, municipality_code/name, shelter_code/name, evacuee_status
    (in_shelter | left | transferred), since (registration or last check-in), left_at, destination,
    care (the raw flags), how ("own shelter" | "cross-town (…)"), remote (another town's shelter).
    """
    set_tenant(conn, m)
    names = municipality_names(conn)
    shelters = shelter_names(conn, m)
    out: dict[str, list[dict[str, Any]]] = {}
    q = (select(hub_person_link.c.resident_id, hub_person_link.c.evacuee_id, hub_evacuee.c.status,
                hub_evacuee.c.current_shelter_code, hub_evacuee.c.shelter_code, hub_evacuee.c.device_id,
                hub_evacuee.c.registered_at, hub_evacuee.c.last_stay_key, hub_evacuee.c.care)
         .join(hub_evacuee, (hub_evacuee.c.municipality_code == hub_person_link.c.municipality_code)
               & (hub_evacuee.c.evacuee_id == hub_person_link.c.evacuee_id), isouter=True)
         .where(hub_person_link.c.municipality_code == m, hub_person_link.c.revoked_at.is_(None),
                hub_person_link.c.resident_municipality.is_(None) | (hub_person_link.c.resident_municipality == m))
         .order_by(hub_person_link.c.linked_at, hub_person_link.c.link_id))
    # plain tuples: a mapping per row costs more than the query (HQ's list reads this on every request)
    own = [tuple(r) for r in conn.execute(q).all()]
    # the key is "<hub-ordered time>|<epoch>|<seq>|<stay_id>" (older hubs: "<at>|<stay_id>")
    last_ids = [(r[7] or "").rpartition("|")[2] for r in own]
    last: dict[str, Any] = {}
    if any(last_ids):
        for stay_id, kind, destination, at in conn.execute(
                select(hub_stay.c.stay_id, hub_stay.c.kind, hub_stay.c.destination, hub_stay.c.at)
                .where(hub_stay.c.municipality_code == m,
                       store.in_(conn, hub_stay.c.stay_id, sorted({i for i in last_ids if i})))).all():
            last[stay_id] = (kind, destination, at)
    seen: set[tuple[str, str]] = set()
    care_of: dict[str, Any] = {}  # most evacuees share a handful of flag sets: parse each text once
    for (resident_id, ev, status, current_code, shelter_code, device_id, registered_at, last_key, care), sid \
            in zip(own, last_ids):
        rid = str(resident_id)
        if (rid, ev) in seen:
            continue
        seen.add((rid, ev))
        state = status if status in ("in_shelter", "left", "transferred") else "in_shelter"
        stay = last.get(sid)
        since = stay[2] if stay is not None and stay[0] == "check_in" else registered_at
        flags = care_of.get(care or "{}")
        if flags is None:
            flags = care_of[care or "{}"] = json.loads(care or "{}")
        out.setdefault(rid, []).append({
            "evacuee_id": ev, "municipality_code": m, "municipality_name": names.get(m),
            "shelter_code": current_code or shelter_code,
            "shelter_name": shelters.get(device_id or ""), "evacuee_status": status, "state": state,
            "since": since, "last_stay_at": (stay[2] if stay is not None else (last_key or "").split("|")[0]) or None,
            "left_at": stay[2] if stay is not None and state != "in_shelter" else None,
            "destination": (stay[1] or "") if stay is not None and state != "in_shelter" else "",
            "care": dict(flags), "how": "own shelter", "remote": False})
    for r in conn.execute(select(hub_cross_link).where(hub_cross_link.c.municipality_code == m,
                                                       hub_cross_link.c.linked.is_(True))
                          .order_by(hub_cross_link.c.linked_at, hub_cross_link.c.evacuee_id)).mappings():
        state = r["status"] if r["status"] in ("in_shelter", "left", "transferred") else "in_shelter"
        out.setdefault(str(r["resident_id"]), []).append({
            "evacuee_id": r["evacuee_id"], "municipality_code": r["host_code"],
            "municipality_name": names.get(r["host_code"]), "shelter_code": r["shelter_code"],
            "shelter_name": r["shelter_name"], "evacuee_status": r["status"], "state": state,
            "since": r["registered_at"], "last_stay_at": None, "left_at": None, "destination": "",
            "care": {}, "how": f"cross-town ({r['decision']})", "remote": True})
    return out


# ---- HQ records (他の手段で確認 / 死亡 / 行方不明, and their withdrawal) ---------------------------------
def hq_record_rows(conn: Connection, m: str, resident_id: str | None = None) -> list[dict[str, Any]]:
    """HQ records of the municipality (of one resident), in replay order: (at, record_id)."""
    set_tenant(conn, m)
    q = select(hub_hq_record).where(hub_hq_record.c.municipality_code == m)
    if resident_id is not None:
        q = q.where(hub_hq_record.c.resident_id == resident_id)
    rows = [{k: v for k, v in r.items() if k != "municipality_code"} for r in conn.execute(q).mappings()]
    rows.sort(key=lambda r: (parse_time(r["at"]) or _EPOCH, r["record_id"]))
    return rows


def list_inputs(engine: Engine, key: DataKey | None, m: str) -> tuple[Any, Any, dict[str, list[dict[str, Any]]],
                                                                       list[dict[str, Any]]]:
    """(snapshot, decrypted records, stays by 宛名番号, every HQ record): what the safety list of
    municipality ``m`` is built from (by ``app.hub_export``, for HQ's JSON and its files)."""
    if key is None:
        raise DataKeyError("the hub has no data key configured: the registry backup cannot be read")
    with engine.connect() as conn:
        snap = registry.latest_snapshot(conn, m)
        if snap is None:
            raise RegistryError(f"no registry backup for municipality {m} at the hub yet "
                                "(anpi hub registry import FILE --municipality CODE)")
        stays = stays_index(conn, m)
        hq = hq_record_rows(conn, m)
    return snap, registry.open_records(engine, key, m, snap), stays, hq


def _evacuee_rows(conn: Connection, m: str, where: Any = None, limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
    shelters = shelter_names(conn, m)
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
                store.in_(conn, hub_person_link.c.evacuee_id, ids))).all():
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


def resolve_field_conflict(engine: Engine, m: str, item_id: str, event_id: str, *, by: str) -> dict[str, Any]:
    """HQ picks one of a field-conflict item's candidate values: the hub's evacuee row takes it
    (its provenance now names that event, at the time of the decision, so an older edit arriving
    late does not overturn it), the item is closed, and the municipality's audit log says who
    chose which event.  Another municipality's item answers like an unknown id (404)."""
    from sync.events import EVACUEE_FIELDS
    from sync.hub.apply import _col_value  # the same column encoding apply uses

    now = store.utcnow()
    with engine.begin() as conn:
        store.hub_lock(conn, m)
        item = conn.execute(select(hub_review_item).where(hub_review_item.c.municipality_code == m,
                                                          hub_review_item.c.item_id == item_id)).mappings().first()
        if item is None:
            raise HubNotFound("no such review item")
        if item["kind"] != "field_conflict":
            raise HubConflict("decision 'value' applies to field-conflict items only")
        if item["status"] != "open":
            raise HubConflict("this review item is already resolved")
        chosen = next((c for c in json.loads(item["candidates"]) if c.get("event_id") == event_id), None)
        if not event_id or chosen is None:
            raise HubConflict("event_id must be one of the item's candidates")
        fname, eid = item["field"], item["evacuee_id"]
        row = conn.execute(select(hub_evacuee.c.provenance, hub_evacuee.c.extra).where(
            hub_evacuee.c.municipality_code == m, hub_evacuee.c.evacuee_id == eid)).first()
        if row is None:
            raise HubConflict("the evacuee of this item is not at the hub")
        prov, extra = json.loads(row[0] or "{}"), json.loads(row[1] or "{}")
        prov[fname] = [now.isoformat(), event_id]
        values: dict[str, Any] = {"provenance": json.dumps(prov, ensure_ascii=False), "updated_at": now}
        if fname in EVACUEE_FIELDS:
            values[fname] = _col_value(fname, chosen.get("value"))
        else:
            extra[fname] = chosen.get("value")
            values["extra"] = json.dumps(extra, ensure_ascii=False)
        conn.execute(hub_evacuee.update().where(hub_evacuee.c.municipality_code == m,
                                                hub_evacuee.c.evacuee_id == eid).values(**values))
        resolution = json.dumps({"decision": "value", "event_id": event_id}, ensure_ascii=False)
        conn.execute(hub_review_item.update().where(
            hub_review_item.c.municipality_code == m, hub_review_item.c.item_id == item_id).values(
            status="resolved", resolution=resolution, resolved_by=by, updated_at=now))
        audit.record(conn, m, actor=by, action="review.resolved", detail={
            "item_id": item_id, "kind": "field_conflict", "evacuee_id": eid, "field": fname, "event_id": event_id})
    return {"item_id": item_id, "status": "resolved", "decision": "value", "evacuee_id": eid, "field": fname,
            "event_id": event_id, "value": chosen.get("value")}


# ---- the calling convention of every /v1/hq route (also used by app/'s hub desk routes) -----------
def answer(exc: Exception) -> JSONResponse:
    """Our exceptions as JSON answers: the one mapping of every route (:mod:`sync.http_errors`)."""
    body, status = error_answer(exc)
    return JSONResponse(body, status_code=status)


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
        except Exception as exc:  # noqa: BLE001 - ours (sync's or app's classes) are answered, the rest re-raised
            if not answerable(exc):
                raise
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
            body = bodies.parse(bodies.ReviewDecision, raw)
            if body.decision == "value":  # a field conflict: HQ picks one candidate's value
                return resolve_field_conflict(engine, u.municipality_code, item_id, body.event_id or "",
                                              by=f"hq:{u.name}")
            return crossmatch.resolve_review(engine, data_key(), u.municipality_code, item_id,
                                             decision=body.decision, resident_id=body.resident_id, by=f"hq:{u.name}")
        return await call(request, fn)

    @router.get("/v1/hq/forks")
    async def fork_list(request: Request) -> JSONResponse:
        """Events two laptops wrote under one device id (a copied database), kept apart (sync.hub.forks)."""
        def fn(u: tenants.HqUser) -> dict[str, Any]:
            keep = ("fork_id", "device_id", "epoch", "seq", "incoming_event_id", "incoming_type", "received_at",
                    "via", "action", "resolved_at", "resolved_by")
            return {"forks": [{k: (r[k].isoformat() if hasattr(r[k], "isoformat") else r[k]) for k in keep}
                              for r in forks.list_forks(engine, u.municipality_code)]}
        return await call(request, fn)

    @router.post("/v1/hq/forks/apply")
    async def fork_apply(request: Request) -> JSONResponse:
        raw = await request.body()

        def fn(u: tenants.HqUser) -> dict[str, Any]:
            ids = bodies.parse(bodies.ForkApply, raw).fork_ids
            return {"applied": forks.apply_forks(engine, ids, by=f"hq:{u.name}", municipality=u.municipality_code)}
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
