"""安否確認リスト: statuses, filters and order, HQ records, every export format, 閲覧制限, audit.

A small hand-written registry is imported through the real CLI (with a gaiji map); evacuees are
registered and moved with the real services; HQ records go through `anpi hq confirm`. Files
written by `anpi export anpi-list` are read back with csv, openpyxl and pypdf.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import Session

from app.db import open_shelter_db
from app.services import anpi_list as al
from matching.address import town_key
from app.services.errors import Conflict, InvalidInput, NotFound
from tests.conftest import Cli, write_csv
from app import db_crypto
from app.db_crypto import connect as db_connect

HEADER = ["宛名番号", "世帯番号", "氏", "名", "氏カナ", "名カナ", "英字氏名", "生年月日", "性別", "続柄", "郵便番号", "住所", "閲覧制限"]
TATE = "岩手県陸前高田市高田町字館の沖"
REGISTRY = [
    ["1003", "H1", "髙橋", "翔", "タカハシ", "シヨウ", "", "20050405", "男", "子", "", TATE + "12-3", ""],
    ["1002", "H1", "髙橋", "京子", "タカハシ", "キヨウコ", "", "昭和47年11月3日", "2", "妻", "", TATE + "12-3", ""],
    ["1001", "H1", "髙橋", "一郎", "タカハシ", "イチロウ", "", "S45.3.1", "1", "世帯主", "", TATE + "12-3", ""],
    ["1004", "H2", "山﨑", "花", "ヤマザキ", "ハナ", "", "1999-12-31", "女", "世帯主", "", "岩手県陸前高田市米崎町2-1", "1"],
    ["1005", "H3", "グエン", "ヴァン アン", "グエン", "ヴァンアン", "NGUYEN VAN AN", "1990/1/2", "M", "世帯主", "", "高田町1", ""],
    ["1006", "H4", "渡邉", "稔", "ワタナベ", "ミノル", "", "S30.5.5", "1", "世帯主", "", "岩手県陸前高田市高田町2", ""],
    ["1007", "H5", "佐々木", "健", "ササキ", "ケン", "", "S55.2.2", "1", "世帯主", "", "岩手県陸前高田市気仙町3", ""],
    ["1008", "H6", "佐々木", "健二", "ササキ", "ケンジ", "", "S55.2.20", "1", "世帯主", "", "岩手県陸前高田市気仙町5", ""],
    ["1010", "H7", "𠮷田", "一", "ヨシダ", "ハジメ", "", "1960-01-01", "1", "世帯主", "", TATE + "3-1", ""],
    ["1011", "H8", "\ue000野", "太郎", "ヨシノ", "タロウ", "", "1961-02-02", "1", "世帯主", "", "岩手県陸前高田市気仙町9", ""],
    ["1012", "H8", "\ue001野", "花子", "ヨシノ", "ハナコ", "", "1962-03-03", "2", "妻", "", "岩手県陸前高田市気仙町9", ""],
    ["1013", "H9", "千葉", "陽", "チバ", "ヒナタ", "", "2023-04-01", "2", "子", "", "岩手県陸前高田市竹駒町7", ""],
    ["1014", "H9", "千葉", "キク", "チバ", "キク", "", "1940-06-06", "2", "世帯主", "", "岩手県陸前高田市竹駒町7", ""],
]
GAIJI = "code,char\r\nU+E000,𠮷\r\n"  # U+E001 stays unmapped on purpose
RESTRICTED = ("1004", "山﨑", "米崎町2-1", "ヤマザキ")


def setup_registry(tmp_path: Path, cli: Cli) -> None:
    gaiji = tmp_path / "gaiji.csv"
    gaiji.write_text(GAIJI, encoding="utf-8")
    code, _, err = cli("registry", "import", write_csv(tmp_path / "juki.csv", [HEADER, *REGISTRY]),
                       "--gaiji-map", gaiji, "--as-of", "2026-10-31")
    assert code == 0, err


def setup_shelter(tmp_path: Path, cli: Cli) -> dict[str, str]:
    """Registry, four evacuees (in, left, transferred, rejected link) and HQ records."""
    from app.services import evacuees
    from app.services.reconcile import staff_decide
    from app.services.roster import EvacueeInput, register

    setup_registry(tmp_path, cli)
    engine = open_shelter_db(cli.db)
    with Session(engine, expire_on_commit=False) as s:
        ichiro = register(s, EvacueeInput(name="高橋 一郎", name_kana="たかはし いちろう", birth_date="S45.3.1", sex="男",
                                          address="高田町字館の沖12-3", care_flags={"disability": True}), by="佐藤")
        kyoko = register(s, EvacueeInput(name="タカハシ キョウコ", birth_date="昭和47年11月3日", sex="女",
                                         address="高田町字館の沖12-3"), by="佐藤")
        minoru = register(s, EvacueeInput(name="渡辺 稔", name_kana="わたなべ みのる", birth_date="S30.5.5", sex="男"), by="佐藤")
        ken = register(s, EvacueeInput(name="佐々木 健", birth_date="S55.2.2", sex="男",
                                       care_flags={"elderly": True}), by="佐藤")
        s.commit()
    assert cli("reconcile")[0] == 0
    with Session(engine, expire_on_commit=False) as s:
        dec = evacuees.latest_decisions(s)
        assert dec[ichiro.id].decision == "auto" and dec[ichiro.id].resident_id == "1001"
        staff_decide(s, kyoko.id, "confirmed", "1002", by="佐藤")
        staff_decide(s, minoru.id, "confirmed", "1006", by="佐藤")
        staff_decide(s, ken.id, "confirmed", "1007", by="佐藤")
        s.commit()
        staff_decide(s, ken.id, "rejected", "1007", by="鈴木")  # the link was wrong: 1007 is unconfirmed again
        evacuees.check_out(s, kyoko.id, by="佐藤", destination="親族宅")
        evacuees.transfer(s, minoru.id, "第二中学校", by="佐藤")
        s.commit()
    engine.dispose()
    for args in (["1005", "--status", "confirmed_other", "--method", "phone", "--note", "本人と通話"],
                 ["1008", "--status", "dead", "--note", "警察から"],
                 ["1013", "--status", "missing"], ["1013", "--status", "withdrawn"],
                 ["1014", "--status", "missing"], ["1014", "--status", "confirmed_other", "--method", "訪問"],
                 ["1001", "--status", "missing"],  # an older report does not hide someone now in a shelter
                 ["1002", "--status", "missing"]):  # reported missing after leaving the shelter: newest wins
        code, out, err = cli("hq", "confirm", *args, "--by", "本部 田中")
        assert code == 0, err
    return {"ichiro": ichiro.id, "kyoko": kyoko.id, "minoru": minoru.id, "ken": ken.id}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Built once per module; each test gets its own copy (SQLite's backup API, WAL included)."""
    tmp = tmp_path_factory.mktemp("anpi-template")
    ids = setup_shelter(tmp, Cli(tmp / "shelter.db"))
    return tmp / "shelter.db", ids


@pytest.fixture
def shelter(template: tuple[Path, dict[str, str]], cli: Cli) -> dict[str, str]:
    src, ids = template
    a, b = db_connect(src), db_connect(cli.db)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    shutil.copy(str(src) + ".audit-key", str(cli.db) + ".audit-key")  # the audit key travels beside the file
    return ids


def build(cli: Cli, **kw) -> al.AnpiList:  # type: ignore[no-untyped-def]
    engine = open_shelter_db(cli.db)
    try:
        with Session(engine) as s:
            return al.build_anpi_list(s, **kw)
    finally:
        engine.dispose()


def by_id(lst: al.AnpiList) -> dict[str, al.AnpiRow]:
    return {r.resident_id: r for r in lst.rows}


# --- statuses ------------------------------------------------------------------------------

def test_every_status_and_its_detail(shelter: dict[str, str], cli: Cli) -> None:
    rows = by_id(build(cli, include_restricted=True))
    assert len(rows) == len(REGISTRY)
    assert rows["1001"].status == "in_shelter" and rows["1001"].shelter and rows["1001"].since is not None
    assert rows["1001"].care == ("障がい",)
    assert rows["1002"].status == "missing"  # left the shelter, reported missing afterwards
    assert rows["1006"].status == "left" and rows["1006"].destination == "第二中学校"
    # transferred, not left: HQ reads 移動 and where to (issue 14 item 8); still counted as safe
    assert rows["1006"].status_ja == "移動" and rows["1006"].safe
    assert "第二中学校へ移動" in rows["1006"].detail and "退所" not in rows["1006"].detail
    assert rows["1007"].status == "unconfirmed" and rows["1007"].care == ()  # link rejected by staff
    assert rows["1005"].status == "confirmed_other" and rows["1005"].hq_method == "電話"
    assert rows["1005"].hq_by == "本部 田中" and "本人と通話" in rows["1005"].detail
    assert rows["1008"].status == "dead"
    assert rows["1013"].status == "unconfirmed"  # missing, then withdrawn
    assert rows["1014"].status == "confirmed_other" and rows["1014"].hq_method == "訪問"
    assert rows["1003"].status == "unconfirmed"
    assert rows["1004"].restricted


def test_moved_out_shows_where_to(tmp_path: Path, cli: Cli) -> None:
    from app.services import evacuees
    from app.services.reconcile import staff_decide
    from app.services.roster import EvacueeInput, register

    setup_registry(tmp_path, cli)
    engine = open_shelter_db(cli.db)
    with Session(engine, expire_on_commit=False) as s:
        ev = register(s, EvacueeInput(name="髙橋 翔", birth_date="20050405", sex="男"), by="佐藤")
        staff_decide(s, ev.id, "confirmed", "1003", by="佐藤")
        evacuees.check_out(s, ev.id, by="佐藤", destination="盛岡市の親戚宅")
        s.commit()
        row = by_id(al.build_anpi_list(s))["1003"]
        assert row.status == "left" and row.destination == "盛岡市の親戚宅" and row.left_at is not None
        evacuees.check_in(s, ev.id, by="佐藤")  # came back
        s.commit()
        assert by_id(al.build_anpi_list(s))["1003"].status == "in_shelter"
    engine.dispose()


@pytest.mark.parametrize("stays,hq,expected", [
    ((), None, "unconfirmed"),
    (("in",), None, "in_shelter"),
    (("in",), ("missing", 5), "in_shelter"),
    (("in",), ("dead", 5), "dead"),
    (("left@2",), None, "left"),
    (("left@2",), ("missing", 5), "missing"),
    (("left@5",), ("missing", 2), "left"),
    (("left@5",), ("confirmed_other", 7), "confirmed_other"),
    (("left@5", "in"), ("missing", 9), "in_shelter"),
    ((), ("confirmed_other", 1), "confirmed_other"),
])
def test_resolve_status_precedence(stays: tuple[str, ...], hq: tuple[str, int] | None, expected: str) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    plain = []
    for s in stays:
        if s == "in":
            plain.append(al.ShelterStay("第一", "in_shelter", since=t0))
        else:
            plain.append(al.ShelterStay("第一", "left", since=t0, left_at=t0 + timedelta(hours=int(s.split("@")[1]))))
    record = al.HqRecord("1", hq[0], t0 + timedelta(hours=hq[1])) if hq else None
    assert al.resolve_status(plain, record)[0] == expected


def test_withdrawn_undoes_only_the_previous_record() -> None:
    t = datetime(2026, 11, 1, tzinfo=timezone.utc)
    recs = [al.HqRecord("9", "missing", t, id="a"), al.HqRecord("9", "confirmed_other", t + timedelta(1), "電話", id="b"),
            al.HqRecord("9", "withdrawn", t + timedelta(2), id="c")]
    assert al.current_hq_records(recs)["9"].id == "a"
    assert al.current_hq_records(recs + [al.HqRecord("9", "withdrawn", t + timedelta(3), id="d")]) == {}


def test_build_rows_is_pure_and_reusable() -> None:
    """The hub feeds plain records it fetched itself (issue 8)."""
    people = [al.ResidentRecord("2", "H1", "妻", "山田", "花子", town="中央2", address="中央2丁目3-4", birth_date=date(1980, 1, 1)),
              al.ResidentRecord("1", "H1", "世帯主", "山田", "太郎", town="中央2", address="中央2丁目3-4"),
              al.ResidentRecord("3", "H2", "世帯主", "秘匿", "者", town="中央2", address="中央2丁目3-4", restricted=True)]
    stays = {"2": [al.ShelterStay("市民体育館", "in_shelter", care=("乳幼児",), remote=True)]}
    lst = al.build_rows(people, stays, {}, today=date(2026, 11, 1))
    assert [r.resident_id for r in lst.rows] == ["1", "2"] and lst.restricted_excluded == 1
    assert lst.rows[1].status == "in_shelter" and lst.rows[1].age == 46 and lst.rows[1].remote
    table = al.export_table(al.build_rows(people, stays, {}, include_restricted=True))
    assert [r[3] for r in table.rows] == ["1", "2"] and table.excluded_count == 1  # dropped even when given


# --- filters, sort, counts ---------------------------------------------------------------

def test_sorted_by_town_house_number_household_and_relationship(shelter: dict[str, str], cli: Cli) -> None:
    rows = build(cli).rows
    towns = [r.town for r in rows]
    from app.services.anpi_towns import town_sort_key

    assert towns == sorted(towns, key=town_sort_key)  # natural order: 五十音 by reading, numbers as numbers
    assert list(dict.fromkeys(towns)) == ["気仙町", "高田町", "高田町館ノ沖", "竹駒町"]
    tate = [(r.resident_id, r.relationship) for r in rows if r.town == "高田町館ノ沖"]
    # 3-1 comes before 12-3 (numbers, not text); in a household 世帯主, then 妻, then 子
    assert tate == [("1010", "世帯主"), ("1001", "世帯主"), ("1002", "妻"), ("1003", "子")]
    take = [r.resident_id for r in rows if r.town == "竹駒町"]
    assert take == ["1014", "1013"]


def test_filters(shelter: dict[str, str], cli: Cli) -> None:
    ids = lambda **f: [r.resident_id for r in build(cli, filters=al.AnpiFilter(**f)).rows]  # noqa: E731
    assert ids(towns=("高田町字館の沖",)) == ["1010", "1001", "1002", "1003"]  # typed like an address
    assert ids(towns=("高田町館ノ沖", "竹駒町")) == ["1010", "1001", "1002", "1003", "1014", "1013"]
    assert ids(household="H1") == ["1001", "1002", "1003"]
    assert ids(age_band="0-5") == ["1013"]
    assert ids(age_band="75+") == ["1014"]
    assert "1001" in ids(age_band="15-64") and "1014" not in ids(age_band="15-64")
    assert ids(care_only=True) == ["1001"]
    assert ids(status="dead") == ["1008"]
    assert ids(status="死亡") == ["1008"]
    assert sorted(ids(status="safe")) == ["1001", "1005", "1006", "1014"]
    with pytest.raises(InvalidInput) as exc:
        build(cli, filters=al.AnpiFilter(towns=("存在しない町",)))
    assert exc.value.field == "town"
    with pytest.raises(InvalidInput):
        build(cli, filters=al.AnpiFilter(age_band="3-4"))


def test_counts_per_status_and_town(shelter: dict[str, str], cli: Cli) -> None:
    lst = build(cli)
    assert lst.counts == {"in_shelter": 1, "left": 1, "confirmed_other": 2, "dead": 1, "missing": 1, "unconfirmed": 6}
    assert sum(lst.counts.values()) == len(lst.rows) == len(REGISTRY) - 1 and lst.restricted_excluded == 1
    assert lst.town_counts["気仙町"]["dead"] == 1 and lst.town_counts["気仙町"]["unconfirmed"] == 3
    assert "米崎町" not in lst.town_counts  # only a 閲覧制限 person lives there
    progress = {p["town"]: p for p in lst.town_progress()}
    assert progress["高田町館ノ沖"] == {"town": "高田町館ノ沖", "label": "高田町字館の沖", "safe": 1, "dead_missing": 1, "unconfirmed": 2, "total": 4}


def test_no_snapshot_and_unknown_town_are_one_line_errors(tmp_path: Path, cli: Cli) -> None:
    code, _, err = cli("export", "anpi-list", "--format", "csv", "--out", tmp_path / "x.csv")
    assert code == 1 and err.strip() == "error: no registry snapshot imported yet (anpi registry import FILE)"
    setup_registry(tmp_path, cli)
    code, _, err = cli("export", "anpi-list", "--format", "csv", "--town", "存在しない町", "--out", tmp_path / "x.csv")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "存在しない町" in err
    assert not (tmp_path / "x.csv").exists()
    for bad in (["--format", "docx"], ["--format", "xlsx", "--encoding", "cp932"], ["--format", "csv", "--encoding", "latin-1"],
                ["--format", "csv", "--age-band", "5-9"], ["--format", "csv", "--status", "safe-ish"],
                ["--format", "pfif", "--town", "竹駒町"]):
        code, _, err = cli("export", "anpi-list", *bad, "--out", tmp_path / "x.out")
        assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), (bad, err)


# --- HQ records ----------------------------------------------------------------------------

def test_hq_confirm_cli_validates_and_audits(tmp_path: Path, cli: Cli) -> None:
    setup_registry(tmp_path, cli)
    code, out, _ = cli("hq", "confirm", "1003", "--status", "confirmed_other", "--method", "visit", "--by", "本部 田中")
    assert code == 0 and "confirmed_other" in out
    for args, msg in ((["9999", "--status", "dead"], "not in the newest snapshot"),
                      (["1003", "--status", "alive"], "unknown status"),
                      (["1003", "--status", "confirmed_other"], "--method"),
                      (["1003", "--status", "confirmed_other", "--method", "fax"], "unknown method"),
                      (["1005", "--status", "withdrawn"], "no HQ record to withdraw")):
        code, _, err = cli("hq", "confirm", *args, "--by", "本部 田中")
        assert code == 1 and msg in err and len(err.strip().splitlines()) == 1, (args, err)
    con = db_connect(cli.db)
    rows = con.execute("SELECT resident_id, status, method, by_user FROM hqconfirmation").fetchall()
    assert rows == [("1003", "confirmed_other", "訪問", "本部 田中")]
    audit = con.execute("SELECT user_name, action, subjects, detail FROM audit_entry WHERE action = 'hq_confirm'").fetchall()
    assert len(audit) == 1 and audit[0][0] == "本部 田中" and json.loads(audit[0][2]) == ["resident:1003"]
    with pytest.raises(db_crypto.IntegrityError):  # append-only, enforced by the database
        con.execute("UPDATE hqconfirmation SET status = 'dead'")
    with pytest.raises(db_crypto.IntegrityError):
        con.execute("DELETE FROM hqconfirmation")
    con.close()


def test_record_service_errors(tmp_path: Path, cli: Cli) -> None:
    engine = open_shelter_db(cli.db)
    with Session(engine) as s:
        with pytest.raises(NotFound):
            al.record_hq_confirmation(s, "1001", "dead", by="x")  # no snapshot yet
    setup_registry(tmp_path, cli)
    with Session(engine) as s:
        with pytest.raises(Conflict):
            al.record_hq_confirmation(s, "1001", "withdrawn", by="x")
        with pytest.raises(InvalidInput):
            al.record_hq_confirmation(s, "1001", "dead", note="x" * 501, by="x")
        with pytest.raises(InvalidInput):
            al.record_hq_confirmation(s, "1001", "dead", by="")
    engine.dispose()


# --- exports -------------------------------------------------------------------------------

def export(cli: Cli, tmp_path: Path, name: str, *args: str) -> tuple[Path, str, str]:
    out = tmp_path / name
    code, stdout, stderr = cli("export", "anpi-list", *args, "--out", out, "--by", "本部 田中")
    assert code == 0, stderr
    return out, stdout, stderr


def read_csv(path: Path, encoding: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode(encoding))))


def test_csv_utf8_bom(shelter: dict[str, str], cli: Cli, tmp_path: Path) -> None:
    out, stdout, stderr = export(cli, tmp_path, "list.csv", "--format", "csv")
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = read_csv(out, "utf-8-sig")
    assert list(rows[0]) == al.COLUMNS and len(rows) == len(REGISTRY) - 1
    r = {x["宛名番号"]: x for x in rows}
    assert r["1010"]["氏名"] == "𠮷田 一"  # UTF-8 holds it
    assert r["1011"]["氏名"] == "𠮷野 太郎"  # the gaiji map gives the standard character
    assert r["1012"]["氏名"] == "〓野 花子"  # unmapped gaiji: 〓, listed below
    assert r["1001"]["状態"] == "避難所で確認" and r["1001"]["要配慮"] == "障がい" and r["1001"]["避難所"]
    assert r["1006"]["状態"] == "移動" and r["1006"]["退所先"] == "第二中学校"
    assert r["1005"]["確認方法"] == "電話" and r["1005"]["確認者"] == "本部 田中" and r["1005"]["備考"] == "本人と通話"
    assert r["1014"]["年齢"] and r["1003"]["生年月日"] == "2005-04-05"
    report = read_csv(tmp_path / "list.replacements.csv", "utf-8-sig")
    assert {(x["宛名番号"], x["元の文字"], x["置換後"]) for x in report} == {("1011", "\ue000", "𠮷"), ("1012", "\ue001", "〓")}
    summary = (tmp_path / "list.summary.txt").read_text(encoding="utf-8-sig")
    assert "閲覧制限により出力していない人数: 1人" in summary and "未確認 6人" in summary
    assert "1 閲覧制限 residents left out" in stdout and "replacements.csv" in stderr


def test_csv_cp932_replaces_and_reports(shelter: dict[str, str], cli: Cli, tmp_path: Path) -> None:
    out, _, stderr = export(cli, tmp_path, "list-sjis.csv", "--format", "csv", "--encoding", "cp932")
    raw = out.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert "髙橋 一郎".encode("cp932") in raw  # 髙 is in CP932 (IBM extension): kept as registered
    r = {x["宛名番号"]: x for x in read_csv(out, "cp932")}
    assert r["1010"]["氏名"] == "吉田 一"  # 𠮷 → its standard form
    assert r["1011"]["氏名"] == "吉野 太郎"  # gaiji → 𠮷 (map) → 吉
    assert r["1012"]["氏名"] == "〓野 花子"
    report = read_csv(tmp_path / "list-sjis.replacements.csv", "utf-8-sig")
    got = {(x["行"], x["宛名番号"], x["項目"], x["元の文字"], x["符号位置"], x["置換後"]) for x in report}
    line_of = {x["宛名番号"]: str(i) for i, x in enumerate(read_csv(out, "cp932"), start=1)}
    assert (line_of["1010"], "1010", "氏名", "𠮷", "U+20BB7", "吉") in got
    assert (line_of["1011"], "1011", "氏名", "\ue000", "U+E000", "吉") in got
    assert (line_of["1012"], "1012", "氏名", "\ue001", "U+E001", "〓") in got
    assert "row " in stderr and "U+20BB7" in stderr


def test_fitter_standard_forms() -> None:
    from app.formats.anpi_list_export import fitter_for

    f = fitter_for("cp932", {"U+E010": "髙"})
    assert f.fit("𠮷田") == ("吉田", (("𠮷", "吉"),))
    assert f.fit("—") == ("―", (("—", "―"),))  # EM DASH → the CP932 form
    assert f.fit("\ue010橋") == ("髙橋", (("\ue010", "髙"),))
    assert f.fit("葛\U000e0100城") == ("葛城", (("\U000e0100", ""),))  # a variation selector is dropped, and said so
    assert f.fit("\U0002a6b2")[0] == "〓"  # no standard form known
    assert fitter_for("unicode").fit("𠮷\ue005") == ("𠮷〓", (("\ue005", "〓"),))


def test_xlsx_structure(shelter: dict[str, str], cli: Cli, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from app.formats.anpi_list_export import display_width

    out, _, _ = export(cli, tmp_path, "list.xlsx", "--format", "xlsx")
    wb = load_workbook(out)
    assert wb.sheetnames == ["集計", "気仙町", "高田町", "高田町館ノ沖", "竹駒町"]
    summary = [c for row in wb["集計"].iter_rows(values_only=True) for c in row if c is not None]
    assert "閲覧制限により出力していない人数" in summary and summary[summary.index("閲覧制限により出力していない人数") + 1] == 1
    assert "未確認" in summary and "避難所で確認" in summary
    ws = wb["高田町館ノ沖"]
    assert ws.freeze_panes == "A2"
    values = list(ws.iter_rows(values_only=True))
    assert list(values[0]) == al.COLUMNS and [v[3] for v in values[1:]] == ["1010", "1001", "1002", "1003"]
    address_col = "J"
    assert values[0][9] == "住所"
    assert ws.column_dimensions[address_col].width >= display_width(TATE + "12-3")  # full-width counts as 2
    assert ws.column_dimensions["H"].width < 10  # 年齢 stays narrow
    kesen = [v[4] for v in wb["気仙町"].iter_rows(min_row=2, values_only=True)]
    assert "𠮷野 太郎" in kesen and "〓野 花子" in kesen


def test_sheet_titles_are_valid_and_unique() -> None:
    from app.formats.anpi_list_export import sheet_title

    used: set[str] = set()
    long = "とても長い町字の名前がここにあって三十一文字を超えてしまう場合の例です"
    a, b = sheet_title(long, used), sheet_title(long, used)
    assert len(a) <= 31 and len(b) <= 31 and a != b
    assert sheet_title("中央[1]/2:3*?", used) == "中央_1__2_3__"
    assert sheet_title("集計", used) == "集計" and sheet_title("集計", used) == "集計(2)"
    assert sheet_title("", used) == "（町字なし）"
    assert sheet_title("History", used) == "History_"


def test_pdf_text_pages_and_font(shelter: dict[str, str], cli: Cli, tmp_path: Path) -> None:
    from pypdf import PdfReader

    out, _, _ = export(cli, tmp_path, "list.pdf", "--format", "pdf")
    reader = PdfReader(str(out))
    n = len(reader.pages)
    assert n == 5  # summary + one page per 町字
    box = reader.pages[0].mediabox
    assert round(float(box.width)) == 842 and round(float(box.height)) == 595  # A4 landscape
    texts = [p.extract_text() for p in reader.pages]
    for i, t in enumerate(texts, start=1):
        assert "安否確認リスト" in t and f"{i} / {n}" in t  # header and page number on every page
    everything = "\n".join(texts)
    assert "閲覧制限により出力していない人数: 1人" in everything
    assert "髙橋 一郎" in everything and "第二中学校" in everything and "吉田 一" in everything  # 𠮷: no glyph
    assert "町字: 高田町館ノ沖（4人）" in everything
    fonts = reader.pages[1]["/Resources"]["/Font"]
    desc = [f.get_object() for f in fonts.values()]
    assert any("IPAexGothic" in str(d.get("/BaseFont")) for d in desc)
    report = read_csv(tmp_path / "list.replacements.csv", "utf-8-sig")
    assert ("1010", "𠮷", "吉") in {(x["宛名番号"], x["元の文字"], x["置換後"]) for x in report}


@pytest.mark.parametrize("fmt", ["csv", "cp932", "xlsx", "pdf"])
def test_restricted_person_is_in_no_export(shelter: dict[str, str], cli: Cli, tmp_path: Path, fmt: str) -> None:
    args = ["--format", "csv", "--encoding", "cp932"] if fmt == "cp932" else ["--format", fmt]
    out, _, _ = export(cli, tmp_path, f"list.{fmt}", *args)
    written = [p for p in tmp_path.iterdir() if p.name.startswith("list.")]
    if fmt == "xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(out)
        text = "\n".join(str(c) for ws in wb for row in ws.iter_rows(values_only=True) for c in row if c is not None)
        text += "\n".join(wb.sheetnames)
        assert "閲覧制限により出力していない人数" in text
    elif fmt == "pdf":
        from pypdf import PdfReader

        text = "\n".join(p.extract_text() for p in PdfReader(str(out)).pages)
        assert "閲覧制限により出力していない人数: 1人" in text
    else:
        text = out.read_bytes().decode("cp932" if fmt == "cp932" else "utf-8-sig")
    for side in written:
        if side != out and side.suffix in (".csv", ".txt"):
            text += side.read_text(encoding="utf-8-sig")
    for needle in RESTRICTED + ("米崎町",):
        assert needle not in text, (fmt, needle)
    # an export with a filter that only matches the 閲覧制限 person writes nobody and says why
    out2, stdout, _ = export(cli, tmp_path, f"only.{fmt}", *args, "--household", "H2")
    assert "0 rows" in stdout and "1 閲覧制限 residents left out" in stdout


def test_each_export_is_audited(shelter: dict[str, str], cli: Cli, tmp_path: Path) -> None:
    export(cli, tmp_path, "a.csv", "--format", "csv", "--town", "竹駒町")
    export(cli, tmp_path, "b.xlsx", "--format", "xlsx", "--care-only")
    export(cli, tmp_path, "c.pdf", "--format", "pdf", "--age-band", "75+", "--status", "safe")
    con = db_connect(cli.db)
    rows = con.execute("SELECT user_name, subjects, detail FROM audit_entry WHERE action = 'export' ORDER BY id").fetchall()
    con.close()
    got = [(u, json.loads(s), json.loads(d)) for u, s, d in rows]
    assert [g[2]["format"] for g in got] == ["csv", "xlsx", "pdf"]
    assert all(g[0] == "本部 田中" and g[2]["list"] == "anpi-list" for g in got)
    assert got[0][2]["filters"]["towns"] == ["竹駒町"] and got[0][2]["rows"] == 2
    assert sorted(got[0][1]) == ["resident:1013", "resident:1014"]
    assert got[1][2]["filters"]["care_only"] is True and got[1][1] == ["resident:1001"]
    assert got[2][2]["filters"]["age_band"] == "75+" and got[2][2]["filters"]["status"] == "safe" and got[2][2]["rows"] == 1
    assert all("resident:1004" not in g[1] for g in got)
    code, out, _ = cli("audit", "verify")
    assert code == 0, out


def test_pfif_branch_calls_the_pfif_service(shelter: dict[str, str], cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "persons.xml"
    code, stdout, err = cli("export", "anpi-list", "--format", "pfif", "--out", out, "--by", "本部 田中")
    assert code == 0, err
    assert out.exists() and "(pfif)" in stdout
    assert "山﨑" not in out.read_text(encoding="utf-8")
    con = db_connect(cli.db)
    details = [json.loads(d) for (d,) in con.execute("SELECT detail FROM audit_entry WHERE action = 'export'")]
    con.close()
    assert any(d.get("format") == "pfif" for d in details)


# --- other shelters, via the hub -----------------------------------------------------------

def test_registrations_at_other_shelters_come_from_the_hub(tmp_path: Path) -> None:
    """Shelter 第二中学校 registers and links 髙橋 一郎 and checks 渡邉 稔 out; our shelter pulls the
    hub's feed and shows both (a real hub on SQLite, real HTTP over loopback)."""
    import httpx

    from app.services import evacuees
    from app.services.reconcile import staff_decide
    from app.services.registry import import_registry
    from app.services.roster import EvacueeInput, register
    from sync.hub import server, store
    from tests.sync.helpers import ThreadedServer, enroll_shelter, make_app_shelter, sync

    hub_url = f"sqlite:///{tmp_path / 'hub.db'}"
    with ThreadedServer(server.create_hub_app(hub_url)) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        hub_engine = store.open_hub_engine(hub_url)
        other = make_app_shelter(tmp_path, "第二中学校")
        ours = make_app_shelter(tmp_path, "市民体育館")
        enroll_shelter(other, hub_engine, http, srv.url)
        enroll_shelter(ours, hub_engine, http, srv.url)
        import_registry(ours.engine, write_csv(tmp_path / "juki.csv", [HEADER, *REGISTRY]), as_of=date(2026, 10, 31))
        with other.session() as s:
            a = register(s, EvacueeInput(name="髙橋 一郎", birth_date="S45.3.1", sex="男", care_flags={"infant": True}),
                         by="staff", shelter_code="D2")
            b = register(s, EvacueeInput(name="渡邉 稔", birth_date="S30.5.5", sex="男"), by="staff", shelter_code="D2")
            c = register(s, EvacueeInput(name="佐々木 健", birth_date="S55.2.2", sex="男"), by="staff", shelter_code="D2")
            for ev, rid in ((a, "1001"), (b, "1006"), (c, "1007")):
                staff_decide(s, ev.id, "confirmed", rid, by="staff")
            s.commit()
            evacuees.check_out(s, b.id, by="staff", destination="仮設住宅")
            staff_decide(s, c.id, "rejected", "1007", by="staff")
            s.commit()
        assert sync(other, http).pending == 0
        sync(ours, http)
        with ours.session() as s:
            rows = by_id(al.build_anpi_list(s))
        hub_engine.dispose()
    assert rows["1001"].status == "in_shelter" and rows["1001"].remote and rows["1001"].shelter
    assert rows["1001"].care == ("乳幼児",)
    assert rows["1006"].status == "left" and rows["1006"].destination == "仮設住宅"
    assert rows["1007"].status == "unconfirmed"


def test_town_filter_takes_the_lists_own_town_keys_as_they_are() -> None:
    """A 町字 with a 丁目 number ("中央1", as the chart and the menu offer it) selects that town only;
    normalising it again would turn it into "中央", another town or an unknown-town error."""
    people = [al.ResidentRecord("1", "H1", address="陸前高田市中央1丁目2-3", town=town_key("陸前高田市中央1丁目2-3")),
              al.ResidentRecord("2", "H2", address="陸前高田市中央4", town=town_key("陸前高田市中央4")),
              al.ResidentRecord("3", "H3", address="陸前高田市中央二丁目5", town=town_key("陸前高田市中央二丁目5"))]
    assert [p.town for p in people] == ["中央1", "中央", "中央2"]

    def ids(*towns: str) -> list[str]:
        return [r.resident_id for r in al.build_rows(people, {}, {}, filters=al.AnpiFilter(towns=towns)).rows]

    assert ids("中央1") == ["1"]
    assert ids("中央") == ["2"]
    assert ids("中央一丁目") == ["1"]  # typed: normalised
    assert ids("中央1", "中央2") == ["1", "3"]
