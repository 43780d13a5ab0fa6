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


def test_the_hub_lists_the_municipality_shelters_for_a_transfer(tmp_path: Path, hub_db_url: str) -> None:
    """Issue 14 item 11: after a sync, the shelter list offers the other enrolled shelter (named as it
    enrolled, with the people registered there now), even before anyone there was registered here."""
    from app.services import shelter_list

    with ThreadedServer(server.create_hub_app(hub_db_url)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        hub_engine = store.open_hub_engine(hub_db_url)
        first = make_app_shelter(tmp_path, "第二中学校")
        second = make_app_shelter(tmp_path, "市民体育館")
        third = make_app_shelter(tmp_path, "高田小学校")  # enrolled, nobody registered there yet
        for laptop in (first, second, third):
            enroll_shelter(laptop, hub_engine, http, srv.url)
        with first.session() as s:
            for name in ("髙橋 一郎", "髙橋 京子"):
                register(s, EvacueeInput(name=name, birth_date="S45.3.1"), by="staff", shelter_code="D2")
            s.commit()
        assert sync(first, http).pending == 0
        sync(second, http)
        with second.session() as s:
            views = {v.name: v for v in shelter_list.list_shelters(s)}
            assert views["第二中学校"].population == 2 and views["第二中学校"].source_ja == "本部から"
            assert views["第二中学校"].code == "D2"
            assert shelter_list.destination_for(s, "D2", "") == "第二中学校"
            assert views["高田小学校"].population == 0  # known from the hub's list alone
            assert "市民体育館" not in views  # this laptop itself, as the hub lists it, is not a destination
        hub_engine.dispose()
