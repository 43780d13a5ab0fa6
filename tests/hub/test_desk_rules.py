"""The desks' rules, written once, run once against both stores: the shelter's (a real encrypted
SQLite file) and the hub's (real PostgreSQL as a role row-level security binds, a registry backup
sealed with a data key). Each test calls the rule functions of `app.services.certificate_desk` /
`app.services.pfif_desk` with one store or the other and expects the same answer.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlmodel import Session

from app.services import certificate_desk as desk, pfif_desk
from app.services.certificate_rules import parse_members
from app.services.errors import AlreadyDone, Conflict, Forbidden, InvalidInput, NotFound
from tests.conftest import write_csv
from tests.hub.conftest import PgHub

CAUSE = "令和8年11月20日の地震"
TOWN, TOWN_NAME = "034410", "双葉町"
HEADER = ["宛名番号", "世帯番号", "氏", "名", "氏カナ", "名カナ", "英字氏名", "生年月日", "性別", "続柄", "郵便番号", "住所", "閲覧制限"]
ADDR = "福島県双葉郡双葉町大字長塚字町西1-2"
REGISTRY = [
    ["2001", "H01", "山田", "花子", "ヤマダ", "ハナコ", "", "1972-05-06", "2", "妻", "979-1401", ADDR, ""],
    ["2002", "H01", "山田", "太郎", "ヤマダ", "タロウ", "", "1970-03-01", "1", "世帯主", "979-1401", ADDR, ""],
    ["2003", "H02", "佐藤", "一郎", "サトウ", "イチロウ", "", "1965-01-15", "1", "世帯主", "979-1402", "双葉町大字新山9", "1"],
    ["2004", "H02", "佐藤", "二郎", "サトウ", "ジロウ", "", "1995-08-20", "1", "子", "979-1402", "双葉町大字新山9", ""],
    ["2005", "", "鈴木", "三郎", "スズキ", "サブロウ", "", "1980-12-24", "1", "", "979-1403", "双葉町大字郡山3", ""],
]


def _sought_file() -> bytes:
    """A relative asks Person Finder about 山田 太郎 (resident 2002)."""
    from datetime import datetime, timezone

    from app.formats.pfif import PfifPerson, write_pfif

    t = datetime(2026, 11, 21, tzinfo=timezone.utc)
    return write_pfif([PfifPerson("pf.example.org/p1", source_date=t, full_name="山田 太郎",
                                  alternate_names="ヤマダ タロウ", sex="male", date_of_birth="1970-03-01",
                                  author_name="家族")])


class Desk:
    """One side: `run(make_store_user)` hands the rule a store and commits what it wrote."""

    def __init__(self, side: str, run: Callable[[Callable[[Any], Any]], Any], pfif: Callable[..., Any]) -> None:
        self.side, self.run, self.pfif = side, run, pfif

    def cert(self, fn: Callable[[desk.CertificateStore], Any]) -> Any:
        return self.run(fn)


@contextmanager
def _shelter(tmp: Path) -> Iterator[Desk]:
    from app.services import certificates, pfif
    from app.services.registry import import_registry
    from tests.hub.helpers import app_shelter

    sh = app_shelter(tmp, "desk-rules")
    import_registry(sh.engine, write_csv(tmp / "juki.csv", [HEADER, *REGISTRY]), as_of=date(2026, 10, 31),
                    parallel=False)

    def run(fn: Callable[[Any], Any]) -> Any:
        with Session(sh.engine, expire_on_commit=False) as s:
            out = fn(certificates.ShelterCertificates(s))
            s.commit()
            return out

    def links(fn: Callable[[Any], Any]) -> Any:
        with Session(sh.engine, expire_on_commit=False) as s:
            out = fn(pfif.ShelterPfifLinks(s, by_user="佐藤", screen="test"))
            s.commit()
            return out

    def pfif_import() -> list[tuple[str, str, str]]:
        path = tmp / "sought.xml"
        path.write_bytes(_sought_file())
        with Session(sh.engine, expire_on_commit=False) as s:
            pfif.import_pfif(s, path, by_user="佐藤")
            s.commit()
            return [(sid, lk.target_kind, lk.target_id) for sid, lks in pfif.current_links(s).items() for lk in lks]

    try:
        yield Desk("shelter", run, lambda what, *a: links(what) if what != "import" else pfif_import())
    finally:
        sh.engine.dispose()


@contextmanager
def _hub(pg: PgHub, tmp: Path) -> Iterator[Desk]:
    from app import hub_certificates, hub_pfif
    from app.hub_app import create_app
    from app.hub_registry import store_at_hub
    from sync.hub import registry, tenants
    from sync.hub.store import hub_lock, set_tenant

    key = registry.DataKey.generate()
    engine = create_app(pg.url, data_key=key).state.engine
    tenants.add_municipality(engine, TOWN, TOWN_NAME)
    store_at_hub(engine, key, TOWN, write_csv(tmp / "juki.csv", [HEADER, *REGISTRY]), imported_by="test")

    def run(fn: Callable[[Any], Any]) -> Any:
        return fn(hub_certificates.HubCertificates(engine, key, TOWN))

    def links(fn: Callable[[Any], Any]) -> Any:
        reg = hub_pfif._registry(engine, key, TOWN)
        with engine.begin() as conn:
            set_tenant(conn, TOWN)
            hub_lock(conn, TOWN)
            return fn(hub_pfif.HubPfifLinks(conn, TOWN, reg, "hq:佐藤"))

    def pfif_import() -> list[tuple[str, str, str]]:
        hub_pfif.import_pfif(engine, key, TOWN, _sought_file(), "sought.xml", by="hq:佐藤")
        rows = hub_pfif.sought_list(engine, key, TOWN, reveal_restricted=True)
        return [(r["sought_id"], lk["target_kind"], lk["target_id"]) for r in rows for lk in r["links"]]

    try:
        yield Desk("hub", run, lambda what, *a: links(what) if what != "import" else pfif_import())
    finally:
        engine.dispose()


@pytest.fixture(params=["shelter", "hub"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    if request.param == "shelter":
        with _shelter(tmp_path) as d:
            yield d
    else:
        pg = request.getfixturevalue("pg_hub")
        with _hub(pg, tmp_path) as d:
            yield d


NUMBER = re.compile(r"^(R|H)-[0-9A-Z]{6}-\d+-\d{6}$")


def _issue(d: Desk, **kw: Any) -> Any:
    args: dict[str, Any] = dict(resident_id="2001", kind="risai", damage="半壊", cause=CAUSE, in_person=True,
                                by="窓口")
    args.update(kw)
    return d.cert(lambda st: desk.issue(st, **args))


def test_issue_prints_the_household_head_first_and_one_per_household_and_cause(side: Desk) -> None:
    cert = _issue(side)
    assert NUMBER.match(cert.number) and cert.number.startswith("R-")
    assert cert.head_name == "山田　太郎" and cert.head_address == ADDR and cert.location == ADDR
    assert [m["resident_id"] for m in cert.members] == ["2002", "2001"]  # 世帯主 first, then registry order
    assert cert.identity == "in_person" and cert.damage == "hankai" and not cert.manual
    with pytest.raises(Conflict) as exc:  # the same household (asked by another member), kind and cause
        _issue(side, resident_id="2002")
    assert cert.number in str(exc.value)
    other = _issue(side, resident_id="2002", cause="令和8年12月1日の大雨")
    assert other.number != cert.number
    hisai = _issue(side, kind="hisai", damage=None)  # the other kind: fine
    assert hisai.number.startswith("H-") and hisai.damage == ""
    side.cert(lambda st: desk.void(st, cert.number, "再調査で判定変更", by="窓口"))
    again = _issue(side, resident_id="2002", damage="全壊")  # the void one no longer counts
    assert again.number != cert.number and again.damage == "zenkai"


def test_issue_refuses_what_the_rules_refuse(side: Desk) -> None:
    with pytest.raises(InvalidInput) as exc:
        _issue(side, in_person=False)  # no link to an evacuee and no ID checked at the desk
    assert exc.value.field == "identity"
    with pytest.raises(InvalidInput) as exc:
        _issue(side, damage=None)
    assert exc.value.field == "damage"
    with pytest.raises(InvalidInput) as exc:
        _issue(side, kind="hisai", damage="全壊")
    assert exc.value.field == "damage"
    with pytest.raises(InvalidInput) as exc:
        _issue(side, cause=" ")
    assert exc.value.field == "cause"
    with pytest.raises(NotFound):
        _issue(side, resident_id="9999")
    with pytest.raises(InvalidInput) as exc:
        _issue(side, kind="kasai")
    assert exc.value.field == "kind"
    with pytest.raises(InvalidInput):
        _issue(side, resident_id="")
    assert _issue(side).number.endswith("-000001")  # nothing refused was numbered or stored


def test_a_restricted_household_is_issued_only_to_who_may_see_it(side: Desk) -> None:
    with pytest.raises(Forbidden):  # the member is not flagged, the head of the household is
        _issue(side, resident_id="2004", allow_restricted=False)
    cert = _issue(side, resident_id="2004", allow_restricted=True)
    assert cert.head_name == "佐藤　一郎"
    with pytest.raises(Forbidden):
        side.cert(lambda st: desk.reissue(st, cert.number, allow_restricted=False, by="窓口"))
    assert side.cert(lambda st: desk.reissue(st, cert.number, by="本部")).reissue_count == 1


def test_reissue_counts_void_is_final_and_a_void_one_never_prints(side: Desk) -> None:
    cert = _issue(side)
    assert side.cert(lambda st: desk.reissue(st, cert.number.lower(), reason="紛失", by="窓口")).reissue_count == 1
    assert side.cert(lambda st: desk.reissue(st, cert.number, by="窓口")).reissue_count == 2
    _, data = side.cert(lambda st: desk.pdf(st, cert.number, by="窓口"))
    assert data.startswith(b"%PDF-")
    with pytest.raises(InvalidInput) as exc:
        side.cert(lambda st: desk.void(st, cert.number, "  ", by="窓口"))
    assert exc.value.field == "reason"
    voided = side.cert(lambda st: desk.void(st, cert.number, "記載誤り", by="窓口"))
    assert voided.status == "void" and voided.void_reason == "記載誤り"
    for again in (lambda st: desk.void(st, cert.number, "二度目", by="窓口"),
                  lambda st: desk.reissue(st, cert.number, by="窓口"),
                  lambda st: desk.pdf(st, cert.number, by="窓口")):
        with pytest.raises(Conflict):
            side.cert(again)
    with pytest.raises(NotFound):
        side.cert(lambda st: desk.void(st, "R-AAAAAA-1-000999", "ない", by="窓口"))
    with pytest.raises(InvalidInput):
        side.cert(lambda st: desk.reissue(st, " ", by="窓口"))


def test_the_manual_path_keeps_the_household_as_declared(side: Desk) -> None:
    cert = side.cert(lambda st: desk.issue_manual(
        st, kind="hisai", cause=CAUSE, name="高橋 四郎", address="双葉町大字細谷1", note="台帳外",
        members=[{"name": "高橋 五月", "relationship": "妻", "birth_date": "1982-05-05"}], by="窓口"))
    assert cert.manual and cert.identity == "manual" and cert.resident_id == ""
    assert cert.head_name == "高橋 四郎" and cert.location == "双葉町大字細谷1" and "台帳外" in cert.manual_reason
    again = side.cert(lambda st: desk.issue_manual(st, kind="hisai", cause=CAUSE, name="高橋 四郎",
                                                   address="双葉町大字細谷1", by="窓口"))
    assert again.number != cert.number  # the manual path is not tied to a household: no one-per-household
    with pytest.raises(InvalidInput) as exc:
        side.cert(lambda st: desk.issue_manual(st, kind="hisai", cause=CAUSE, name="", address="x", by="窓口"))
    assert exc.value.field == "name"
    with pytest.raises(InvalidInput) as exc:
        side.cert(lambda st: desk.issue_manual(st, kind="hisai", cause=CAUSE, name="岩手 一", address=" ", by="窓口"))
    assert exc.value.field == "address"
    with pytest.raises(InvalidInput) as exc:
        parse_members("岩手 花子, 妻, 2月30日")
    assert "1" in str(exc.value) and exc.value.field == "members"


def test_a_link_decision_is_confirmed_undone_and_never_made_twice(side: Desk) -> None:
    links = side.pfif("import")
    target = next(((sid, kind, tid) for sid, kind, tid in links if kind == "resident" and tid == "2002"), None)
    assert target is not None, links
    sid, kind, tid = target

    def decide(decision: str, **kw: Any) -> Any:
        return side.pfif(lambda st: pfif_desk.decide_link(st, sid, kind, tid, decision, **kw))

    with pytest.raises(Conflict):  # nothing staff decided yet
        decide("undo")
    decide("confirmed")
    with pytest.raises(AlreadyDone):
        decide("confirmed")
    decide("undo")
    decide("rejected")
    with pytest.raises(InvalidInput):
        decide("maybe")
    with pytest.raises(NotFound):
        side.pfif(lambda st: pfif_desk.decide_link(st, sid, "resident", "2005", "confirmed"))
    with pytest.raises(NotFound):
        side.pfif(lambda st: pfif_desk.decide_link(st, "no-such-id", kind, tid, "confirmed"))
