"""The municipality's shelters as the hub knows them: every enrolled (active) laptop, the shelter it
serves and how many people are registered there now. Laptops pull this (``GET /v1/shelters``) so a
移動 (transfer) picks a real shelter instead of a name typed by hand."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from sync.hub.store import hub_device, hub_evacuee, set_tenant


def shelter_directory(engine: Engine, municipality: str) -> list[dict[str, Any]]:
    """[{"code", "name", "population"}] for the municipality's active laptops.

    code: the shelter code the laptop's registrations carry (the most frequent one), or the device id
    while it has registered nobody; population: its evacuees whose last stay is in the shelter.
    """
    with engine.connect() as conn:
        set_tenant(conn, municipality)
        devices = conn.execute(select(hub_device.c.device_id, hub_device.c.shelter_name, hub_device.c.name).where(
            hub_device.c.municipality_code == municipality, hub_device.c.status == "active",
            hub_device.c.device_id.is_not(None))).all()
        rows = conn.execute(select(hub_evacuee.c.device_id, hub_evacuee.c.shelter_code, hub_evacuee.c.status,
                                   func.count()).where(hub_evacuee.c.municipality_code == municipality,
                                                       hub_evacuee.c.registered.is_(True))
                            .group_by(hub_evacuee.c.device_id, hub_evacuee.c.shelter_code, hub_evacuee.c.status)).all()
    codes: dict[str, Counter[str]] = {}
    people: Counter[str] = Counter()
    for device_id, code, status, n in rows:
        if code:
            codes.setdefault(device_id, Counter())[code] += n
        if status == "in_shelter":
            people[device_id] += n
    out = []
    for device_id, shelter_name, slot_name in devices:
        code = codes[device_id].most_common(1)[0][0] if device_id in codes else device_id
        out.append({"code": code, "name": shelter_name or slot_name or code, "population": people.get(device_id, 0)})
    return out
