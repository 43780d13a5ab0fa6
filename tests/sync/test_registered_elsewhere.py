"""A shelter sees that another shelter already registered the person at its desk (via the hub)."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.services.evacuees import registered_elsewhere
from app.services.roster import EvacueeInput, register
from sync.hub import server, store
from tests.sync.helpers import ThreadedServer, enroll_shelter, make_app_shelter, sync


def test_arrival_at_another_shelter_is_shown(tmp_path: Path, hub_db_url: str) -> None:
    with ThreadedServer(server.create_hub_app(hub_db_url)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        hub_engine = store.open_hub_engine(hub_db_url)
        first = make_app_shelter(tmp_path, "第二中学校")
        second = make_app_shelter(tmp_path, "市民体育館")
        enroll_shelter(first, hub_engine, http, srv.url)
        enroll_shelter(second, hub_engine, http, srv.url)
        with first.session() as s:
            register(s, EvacueeInput(name="髙橋 一郎", name_kana="タカハシ イチロウ", birth_date="S45.3.1"),
                     by="staff", shelter_code="D2")
            s.commit()
        assert sync(first, http).pending == 0
        sync(second, http)
        with second.session() as s:
            found = registered_elsewhere(s, "タカハシ イチロウ", "1970-03-01")
            assert [f["shelter_code"] for f in found] == ["D2"]
            assert found[0]["shelter_name"]
            assert registered_elsewhere(s, "タカハシ イチロウ", "1970-03-02") == []
            assert registered_elsewhere(s, "佐藤 花子", "1970-03-01") == []
        hub_engine.dispose()
