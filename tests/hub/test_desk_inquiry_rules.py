"""The 安否照会 desk's flow (`app.services.inquiry_desk.answer_inquiry`), run once against both stores.

One laptop (a real encrypted SQLite file) registers the people; the shelter's store answers over
its session; for the hub's store the same laptop enrols with a real hub (uvicorn on loopback,
PostgreSQL as a role row-level security binds), pulls the hub's registry backup and pushes its
registrations, and the hub answers over its rows. The same questions get the same outcomes.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from app.services import inquiry_desk
from app.services.inquiry_rules import InquiryRequest
from tests.conftest import write_csv
from tests.hub.conftest import PgHub
from tests.hub.test_desk_rules import ADDR, HEADER, REGISTRY, TOWN, TOWN_NAME

#: (name, reading, birth, address, ⑫ relatives consent) — registered at the laptop
PEOPLE = [
    ("山田 太郎", "ヤマダ タロウ", "1970-03-01", ADDR, False),  # resident 2002: refused relatives
    ("鈴木 三郎", "スズキ サブロウ", "1980-12-24", "双葉町大字郡山3", True),  # resident 2005
    ("佐藤 一郎", "サトウ イチロウ", "1965-01-15", "双葉町大字新山9", True),  # resident 2003: 閲覧制限
    ("田中 花子", "タナカ ハナコ", "1990-04-01", "双葉町大字目迫1", True),  # two namesakes, not in the registry
    ("田中 花子", "タナカ ハナコ", "1990-04-01", "浪江町大字幾世橋5", True),
]


def _register(sh: Any) -> None:
    """Register PEOPLE and match them against the registry (as the intake screen does)."""
    from app.services.reconcile import reconcile_all
    from app.services.roster import EvacueeInput, register

    with sh.session() as s:
        for name, kana, birth, address, relatives in PEOPLE:
            register(s, EvacueeInput(name=name, name_kana=kana, birth_date=birth, address=address,
                                     consent_relatives=relatives, consent_acquaintances=True, consent_public=True),
                     by="受付")
        s.commit()
    reconcile_all(sh.engine)


@contextmanager
def _shelter(tmp: Path) -> Iterator[Callable[[InquiryRequest], Any]]:
    from app.services.inquiry import ShelterInquiries
    from app.services.registry import import_registry
    from tests.hub.helpers import app_shelter

    sh = app_shelter(tmp, "inquiry-desk")
    import_registry(sh.engine, write_csv(tmp / "juki.csv", [HEADER, *REGISTRY]), parallel=False)
    _register(sh)

    def ask(req: InquiryRequest) -> tuple[str, bool, list[int]]:
        with sh.session() as s:
            res = inquiry_desk.answer_inquiry(ShelterInquiries(s, user="窓口", screen="test"), req)
            s.commit()
            if res.inquiry is None:
                return "ambiguous", True, []
            return res.inquiry.outcome, False, [i["no"] for i in res.inquiry.items_disclosed]

    try:
        yield ask
    finally:
        sh.engine.dispose()


@contextmanager
def _hub(pg: PgHub, tmp: Path) -> Iterator[Callable[[InquiryRequest], Any]]:
    from app.hub_app import create_app
    from app.hub_inquiry import HubInquiries
    from app.hub_registry import pull_into_shelter, store_at_hub
    from sync import client
    from sync.hub import registry, tenants
    from tests.hub.helpers import app_shelter, enroll
    from tests.sync.helpers import ThreadedServer, no_sleep

    key = registry.DataKey.generate()
    app = create_app(pg.url, data_key=key)
    engine = app.state.engine
    tenants.add_municipality(engine, TOWN, TOWN_NAME)
    store_at_hub(engine, key, TOWN, write_csv(tmp / "juki.csv", [HEADER, *REGISTRY]), imported_by="test")
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        sh = app_shelter(tmp, "inquiry-desk")
        enroll(sh, engine, http, TOWN, srv.url)
        pull_into_shelter(sh.engine, sh.session, http=http)
        _register(sh)
        assert client.sync_once(sh.session, http=http, sleep=no_sleep).ok

    def ask(req: InquiryRequest) -> tuple[str, bool, list[int]]:
        with engine.begin() as conn:
            res = inquiry_desk.answer_inquiry(HubInquiries(conn, TOWN, key, by="窓口", actor="test"), req)
        return res.outcome, res.needs_detail, [i["no"] for i in res.items]

    try:
        yield ask
    finally:
        sh.engine.dispose()
        engine.dispose()


@pytest.fixture(params=["shelter", "hub"])
def ask(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[InquiryRequest], Any]]:
    if request.param == "shelter":
        with _shelter(tmp_path) as a:
            yield a
    else:
        with _hub(request.getfixturevalue("pg_hub"), tmp_path) as a:
            yield a


def _req(name: str, birth: str = "", relationship: str = "同居の親族", **kw: Any) -> InquiryRequest:
    return InquiryRequest(inquirer_name="双葉 次郎", inquirer_address="埼玉県加須市騎西1", id_proof="運転免許証",
                          relationship=relationship, sought_name=name, sought_birth=birth, **kw)


def test_the_consent_tiers_decide_what_is_said(ask: Callable[[InquiryRequest], Any]) -> None:
    outcome, needs_detail, items = ask(_req("鈴木 三郎", "1980-12-24"))
    assert (outcome, needs_detail) == ("answered", False) and 1 in items  # a relative: every item recorded
    assert ask(_req("鈴木 三郎", "1980-12-24", relationship="知人"))[0] == "answered"  # ⑬ given
    assert ask(_req("山田 太郎", "1970-03-01")) == ("refused", False, [])  # ⑫ refused: never widened by ⑭
    assert ask(_req("高橋 誰", "1999-01-01")) == ("not_found", False, [])


def test_a_restricted_person_gets_no_information_and_namesakes_need_detail(ask: Callable[[InquiryRequest], Any]
                                                                          ) -> None:
    assert ask(_req("佐藤 一郎", "1965-01-15")) == ("restricted", False, [])  # flagged in the registry
    assert ask(_req("田中 花子", "1990-04-01")) == ("ambiguous", True, [])  # two could be meant: more detail
    assert ask(_req("田中 花子", "1990-04-01", give_up=True)) == ("ambiguous", False, [])  # gave up: nothing said
    outcome, _, items = ask(_req("田中 花子", "1990-04-01", sought_address="浪江町大字幾世橋5"))
    assert outcome == "answered" and items
