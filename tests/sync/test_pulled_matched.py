"""Registrations pulled from the hub are matched at once against this laptop's registry (issue 14 item 1)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx

from app.services.anpi_list import build_anpi_list
from app.services.evacuees import registrations_of
from app.services.reconcile import match_now
from app.services.registry import import_registry
from app.services.remote_match import on_pulled
from app.services.roster import EvacueeInput, register
from sync.hub import server, store
from tests.conftest import write_csv
from tests.sync.helpers import ThreadedServer, enroll_shelter, make_app_shelter, sync
from tests.web.helpers import HEADER, REGISTRY


def test_a_registration_pulled_without_a_decision_reaches_hq_list(tmp_path: Path, hub_db_url: str) -> None:
    with ThreadedServer(server.create_hub_app(hub_db_url)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        hub_engine = store.open_hub_engine(hub_db_url)
        first = make_app_shelter(tmp_path, "第二中学校")  # no registry on this laptop: it cannot decide
        second = make_app_shelter(tmp_path, "市民体育館")
        import_registry(second.engine, write_csv(tmp_path / "juki.csv", [HEADER, *REGISTRY]), as_of=date(2026, 10, 31))
        enroll_shelter(first, hub_engine, http, srv.url)
        enroll_shelter(second, hub_engine, http, srv.url)
        with first.session() as s:
            ev = register(s, EvacueeInput(name="高橋 一郎", name_kana="たかはし いちろう", birth_date="S45.3.1",
                                          address="高田町字館の沖12-3"), by="staff", shelter_code="D2")
            assert match_now(s, [ev.id]) == {}  # nothing to match against here
            s.commit()
        assert sync(first, http).pending == 0
        with second.session() as s:
            before = {r.resident_id: r.status for r in build_anpi_list(s).rows}
        assert before["1001"] == "unconfirmed"
        sync(second, http, on_pulled=on_pulled(second.engine))
        with second.session() as s:
            after = {r.resident_id: r for r in build_anpi_list(s).rows}
        assert after["1001"].status == "in_shelter"
        with second.session() as s:  # the desk here sees it on the candidate card before registering again
            assert [x["where"] for x in registrations_of(s, ["1001"])["1001"]] == ["elsewhere"]
        hub_engine.dispose()
