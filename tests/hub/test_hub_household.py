"""Issue 12 item 3 at the hub: only the mother is flagged (閲覧制限); her child's registration must not
tell where she is — not through 安否照会 (⑩ shelter), not through the feed to other laptops
("registered_elsewhere"), and a registration the feed served before the link was known is withdrawn
from the laptops (``evacuee.retracted``). Real PostgreSQL (row-level security), the hub's own apply."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, SQLModel

from app import hub_inquiry
from app.services.inquiry_rules import InquiryRequest
from sync import client
from sync.hub.store import new_row_id, pull_feed
import csv

import httpx
import pytest

from app.hub_app import create_app
from sync.hub import registry, tenants
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, add_towns, store_registry
from tests.hub.test_hub_restricted import apply, decide, register
from tests.sync.helpers import ThreadedServer


def only_mothers_flagged(town: Any) -> None:
    """Flag the head of one household of several (the mother), nobody else in it."""
    with town.registry.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_hh: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_hh.setdefault(r["世帯番号"], []).append(r)
    for members in by_hh.values():
        kids = [r for r in members if r["続柄"] != "世帯主" and r["氏"] and r["名"] and r["生年月日"]]
        heads = [r for r in members if r["続柄"] == "世帯主"]
        if kids and heads and not any(r["閲覧制限"] for r in members):
            heads[0]["閲覧制限"] = "1"
            break
    with town.registry.open("w", encoding="utf-8", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    town.residents = rows


@pytest.fixture
def world(pg_hub: PgHub, tmp_path: Path):  # noqa: ANN201
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, b = add_towns(engine, tmp_path, residents=300, evacuees=5)
    only_mothers_flagged(a)
    store_registry(engine, key, a)
    a.desk_token = tenants.add_user(engine, A, "窓口-A", "desk")[1]  # type: ignore[attr-defined]
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        yield {"engine": engine, "key": key, "a": a, "b": b, "http": http, "url": srv.url, "pg": pg_hub,
               "tmp": tmp_path}
    engine.dispose()

OTHER_DEVICE = "Z" * 26


def mother_and_child(town: Any) -> tuple[dict[str, str], dict[str, str]]:
    """A flagged resident and an unflagged member of the same 世帯番号 with a name and a birth date."""
    by_hh: dict[str, list[dict[str, str]]] = {}
    for p in town.residents:
        by_hh.setdefault(p["世帯番号"], []).append(p)
    for p in town.residents:
        if p["閲覧制限"]:
            for q in by_hh.get(p["世帯番号"], []):
                if not q["閲覧制限"] and q["氏"] and q["名"] and q["生年月日"]:
                    return p, q
    raise AssertionError("the fixture registry has no flagged person living with someone")


def _child_registered(w: dict[str, Any]) -> tuple[str, dict[str, str]]:
    _mother, child = mother_and_child(w["a"])
    eid = new_row_id()
    apply(w["engine"], [register(eid, f"{child['氏']} {child['名']}")])
    apply(w["engine"], [decide(eid, child["宛名番号"])])
    return eid, child


def test_hub_inquiry_about_the_child_of_a_flagged_mother_answers_nothing(world) -> None:  # noqa: ANN001
    w = world
    _eid, child = _child_registered(w)
    req = InquiryRequest(inquirer_name="双葉 太郎", inquirer_address="加須市", id_proof="運転免許証",
                         relationship="同居の親族", sought_name=f"{child['氏']} {child['名']}",
                         sought_birth=child["生年月日"])
    res = hub_inquiry.answer_inquiry(w["engine"], w["key"], A, req, by="窓口", actor="test")
    assert res.desk_outcome == "no_information"


def test_feed_withdraws_the_childs_registration_from_other_laptops(world) -> None:  # noqa: ANN001
    """Laptop 1 registers the child (no link yet), laptop 2 pulls "already registered at …"; then laptop
    1 links the child to her registry record (the flagged mother's household): the hub withholds
    the registration and laptop 2 forgets it (``evacuee.retracted``)."""
    from app.services.evacuees import registered_elsewhere
    from app.services.reconcile import staff_decide
    from app.services.roster import EvacueeInput, register as register_here
    from tests.hub.helpers import app_shelter, enroll
    from tests.hub.test_hub_restricted import sync

    w = world
    _mother, child = mother_and_child(w["a"])
    one, two = app_shelter(w["tmp"], "双葉町体育館"), app_shelter(w["tmp"], "双葉町公民館")
    for sh in (one, two):
        enroll(sh, w["engine"], w["http"], A, w["url"])
    name, birth = f"{child['氏']} {child['名']}", child["生年月日"]
    with one.session() as s:
        ev = register_here(s, EvacueeInput(name=name, birth_date=birth), by="受付")
        s.commit()
        ev_id = ev.id
    sync(one, w["http"])
    sync(two, w["http"])
    with two.session() as s:
        assert [e["shelter_name"] for e in registered_elsewhere(s, name, birth)] == ["双葉町体育館"]
    with one.session() as s:
        staff_decide(s, ev_id, "confirmed", child["宛名番号"], by="受付")
        s.commit()
    sync(one, w["http"])
    sync(two, w["http"])
    with two.session() as s:
        assert registered_elsewhere(s, name, birth) == []
        from sqlmodel import select
        from sync.models import RemoteEvent

        kept = {r.type for r in s.exec(select(RemoteEvent).where(RemoteEvent.evacuee_id == ev_id))}
    assert kept == {"evacuee.retracted"}


def test_hub_hq_exports_leave_out_the_flagged_mothers_household(world) -> None:  # noqa: ANN001
    from app.hub_export import export_anpi_list

    w = world
    mother, child = mother_and_child(w["a"])
    for fmt in ("csv", "xlsx", "pdf"):
        out = w["tmp"] / f"list.{fmt}"
        res = export_anpi_list(w["engine"], w["key"], A, out, fmt=fmt)
        assert res.rows > 0
        if fmt == "csv":
            text = out.read_text(encoding="utf-8-sig")
            assert child["宛名番号"] not in text and mother["宛名番号"] not in text
        if fmt == "xlsx":
            import openpyxl

            cells = {str(c.value) for ws in openpyxl.load_workbook(out).worksheets for row in ws.iter_rows() for c in row}
            assert child["宛名番号"] not in cells
