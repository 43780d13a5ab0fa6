"""A card printed at one shelter is checked and used at another shelter of the same municipality
that never synced: both laptops hold the municipality's card key from their enrolment at the hub."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from app.models import CardArrival, StayEvent
from app.services import card_keys, card_scan, cards
from app.services.roster import EvacueeInput, register
from sync.hub import server, store
from sync.models import CardKey
from tests.cards.test_cards_cli import qr_texts
from tests.sync.helpers import ThreadedServer, enroll_shelter, make_app_shelter, sync


def test_card_verifies_and_moves_the_person_at_another_shelter(tmp_path: Path, hub_db_url: str) -> None:
    with ThreadedServer(server.create_hub_app(hub_db_url)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        hub_engine = store.open_hub_engine(hub_db_url)
        first = make_app_shelter(tmp_path, "第二中学校")
        second = make_app_shelter(tmp_path, "市民体育館")
        stranger = make_app_shelter(tmp_path, "未登録PC")  # never enrolled
        enroll_shelter(first, hub_engine, http, srv.url)
        enroll_shelter(second, hub_engine, http, srv.url)
        with first.session() as s, second.session() as t:
            k1, k2 = s.exec(select(CardKey)).all(), t.exec(select(CardKey)).all()
            assert [k.scope for k in k1] == ["municipality"] and [k.key_id for k in k1] == [k.key_id for k in k2]
        with first.session() as s:
            ev = register(s, EvacueeInput(name="髙橋 一郎", name_kana="タカハシ イチロウ", birth_date="S45.3.1", sex="男"),
                          by="staff", shelter_code="D2")
            ev_id = ev.id
            printed = cards.print_cards(s, [ev_id], size="label62")
            s.commit()
            assert printed.key_scope == "municipality"
        text = qr_texts(printed.pdf)[0]
        # the second shelter never synced: it knows the person only from the card
        with second.session() as t:
            res = card_scan.look_up(t, text)
            assert res.action == "arrive" and res.items["name"] == "髙橋 一郎" and res.items["birth_date"] == "1970-03-01"
            _, here = card_scan.confirm(t, text, by="受付")
            t.commit()
            assert here.id != ev_id and here.status == "in_shelter"
            trail = t.exec(select(CardArrival)).one()
            assert (trail.origin_evacuee_id, trail.origin_shelter) == (ev_id, "D2")
            assert card_scan.look_up(t, text).action == "present"  # the same card again: already here
            from app.services import evacuees

            evacuees.check_out(t, here.id, by="受付", destination="親族宅")
            t.commit()
            res = card_scan.look_up(t, text)
            assert res.action == "checkin" and res.evacuee is not None and res.evacuee.id == here.id
            card_scan.confirm(t, text, by="受付")
            t.commit()
            kinds = [x.kind for x in t.exec(select(StayEvent).where(StayEvent.evacuee_id == here.id).order_by(StayEvent.at))]
            assert kinds == ["check_in", "check_out", "check_in"]
            altered = text.replace(ev_id, ev_id[:-1] + ("0" if ev_id[-1] != "0" else "1"))
            with pytest.raises(card_keys.CardRefused) as exc:
                card_scan.look_up(t, altered)
            assert exc.value.reason == "forged"
        with stranger.session() as u:
            with pytest.raises(card_keys.CardRefused) as exc:
                card_keys.verify(u, text)
            assert exc.value.reason == "unknown_key"
        hub_engine.dispose()


def test_a_laptop_enrolled_before_card_keys_fetches_the_key_at_its_next_sync(tmp_path: Path, hub_db_url: str) -> None:
    with ThreadedServer(server.create_hub_app(hub_db_url)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        hub_engine = store.open_hub_engine(hub_db_url)
        old, new = make_app_shelter(tmp_path, "旧端末"), make_app_shelter(tmp_path, "新端末")
        enroll_shelter(old, hub_engine, http, srv.url)
        enroll_shelter(new, hub_engine, http, srv.url)
        with old.session() as s:
            for k in s.exec(select(CardKey)).all():
                s.delete(k)  # as if enrolled by an older version
            s.commit()
        assert sync(old, http).error is None
        with old.session() as s, new.session() as t:
            assert [(k.scope, k.key_id) for k in s.exec(select(CardKey))] == [(k.scope, k.key_id) for k in t.exec(select(CardKey))]
        hub_engine.dispose()


def test_a_card_of_someone_the_hub_withdrew_prefills_nothing(tmp_path: Path, hub_db_url: str) -> None:
    """The hub withdrew the person under 閲覧制限 after the card was printed: the sealed items stay
    sealed, and the desk is not told where the person came from."""
    from datetime import datetime, timezone

    from sync.models import RemoteEvent

    with ThreadedServer(server.create_hub_app(hub_db_url)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        hub_engine = store.open_hub_engine(hub_db_url)
        first, second = make_app_shelter(tmp_path, "第二中学校"), make_app_shelter(tmp_path, "市民体育館")
        enroll_shelter(first, hub_engine, http, srv.url)
        enroll_shelter(second, hub_engine, http, srv.url)
        with first.session() as s:
            ev_id = register(s, EvacueeInput(name="山田 花", birth_date="1990-01-01"), by="staff", shelter_code="D2").id
            text = cards.card_faces(s, [ev_id])[0][0].qr_text
            s.commit()
        with second.session() as t:
            assert card_scan.look_up(t, text).action == "arrive"
            t.add(RemoteEvent(hub_seq=1, event_id="x", device_id="hub", epoch=1, seq=1, type="evacuee.retracted",
                              recorded_at="2026-12-01T00:00:00Z", payload="{}", payload_sha256="", evacuee_id=ev_id,
                              received_at=datetime.now(timezone.utc)))
            t.commit()
            res = card_scan.look_up(t, text)
            assert (res.action, res.items, res.origin_shelter) == ("intake", {}, "")
        hub_engine.dispose()
