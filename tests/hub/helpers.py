"""Two municipalities on one hub, with registries, shelters and HQ users — all real.

双葉町 (075469) and 加須市 (112101): in 2011 the whole town of Futaba evacuated to Kazo, in
another prefecture, where nobody held Futaba's registry.  Registries come from the fixtures
generator (its fictional 三陸浜市 renamed per municipality, so addresses name the town).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from app.db import open_shelter_db
from fixtures.generate import make_dataset
from sync import client, models
from sync.hub import registry, store, tenants
from tests.sync.helpers import Shelter

A, A_NAME, A_PREFIX = "075469", "双葉町", "福島県双葉郡双葉町"
B, B_NAME, B_PREFIX = "112101", "加須市", "埼玉県加須市"


@dataclass
class Town:
    code: str
    name: str
    registry: Path
    roster: Path
    truth: Path
    residents: list[dict[str, str]] = field(default_factory=list)
    hq_token: str = ""
    admin_token: str = ""


def make_town(tmp: Path, code: str, name: str, prefix: str, *, residents: int = 300, evacuees: int = 30,
              seed: str | int = 1) -> Town:
    ds = make_dataset(tmp / code, residents=residents, evacuees=evacuees, seed=seed)
    for p in (ds.registry_path, ds.roster_path):
        p.write_text(p.read_text(encoding="utf-8-sig").replace("岩手県三陸浜市", prefix).replace("三陸浜市", name),
                     encoding="utf-8")
    with ds.registry_path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return Town(code, name, ds.registry_path, ds.roster_path, ds.truth_path, rows)


def add_towns(engine: Any, tmp: Path, **kw: Any) -> tuple[Town, Town]:
    a = make_town(tmp, A, A_NAME, A_PREFIX, seed="futaba", **kw)
    b = make_town(tmp, B, B_NAME, B_PREFIX, seed="kazo", **kw)
    for t in (a, b):
        tenants.add_municipality(engine, t.code, t.name)
        t.hq_token = tenants.add_user(engine, t.code, f"hq-{t.code}", "hq")[1]
        t.admin_token = tenants.add_user(engine, t.code, f"admin-{t.code}", "admin")[1]
    return a, b


def store_registry(engine: Any, key: registry.DataKey, town: Town) -> registry.SnapshotInfo:
    from app.hub_registry import store_at_hub

    return store_at_hub(engine, key, town.code, town.registry, imported_by="test")


def app_shelter(tmp: Path, name: str) -> Shelter:
    """A laptop database exactly as the CLI creates it."""
    p = tmp / f"{name}.db"
    engine = open_shelter_db(p)
    models.create_all(engine)
    return Shelter(name, p, engine)


def enroll(sh: Shelter, hub_engine: Any, http: httpx.Client, code: str, base_url: str) -> None:
    slot = store.create_enrolment(hub_engine, sh.name, code)
    sh.code = slot.code
    client.enroll(sh.session, base_url, slot.code, sh.name, http=http)


def hq(http: httpx.Client, token: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return http.request(method, path, headers={"Authorization": f"Bearer {token}"},
                        content=json.dumps(body).encode() if body is not None else None)


def session_of(sh: Shelter) -> Session:
    return Session(sh.engine)


C, C_NAME, C_PREFIX = "131016", "千代田区", "東京都千代田区"


def resident(town: Town, n: int = 0, **kw: Any) -> dict[str, str]:
    rows = [p for p in town.residents if p["氏"] and p["名"] and p["生年月日"] and not p["英字氏名"]
            and all(p.get(k) == v for k, v in kw.items())]
    return rows[n]


def typed_input(p: dict[str, str], **over: str) -> Any:
    from app.services.roster import EvacueeInput

    sex = {"1": "男", "2": "女"}.get(p["性別"], "")
    data = dict(name=f"{p['氏']} {p['名']}", name_kana=f"{p['氏カナ']} {p['名カナ']}", birth_date=p["生年月日"],
                sex=sex, address=p["住所"])
    data.update(over)
    return EvacueeInput(**data)


@dataclass
class PageWatch:
    """What a hub page did in the browser: script errors (a CSP refusal shows here), failed
    requests as (status, path) to check one by one, and anything fetched from another host."""

    errors: list[str]
    failed: list[tuple[int, str]]
    outside: list[str]


def watch_page(page: Any, base: str) -> PageWatch:
    w = PageWatch([], [], [])
    page.on("pageerror", lambda e: w.errors.append(str(e)))
    page.on("console", lambda m: w.errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: w.failed.append((r.status, r.url.removeprefix(base).split("?")[0]))
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.on("request", lambda r: w.outside.append(r.url) if not r.url.startswith((base, "blob:")) else None)
    return w
