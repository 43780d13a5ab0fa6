"""Disaster certificates: every printed field, numbering across laptops and restores, reissue, void, CLI.

Real shelter SQLite files in tmp_path, the real registry import, the real PDF read back with pypdf.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from app.db import open_shelter_db
from app.formats.certificate_pdf import CertificateNotPrintable, render_certificate_pdf, wareki
from app.models import Certificate
from app.services import audit
from app.services import certificates as certs
from app.services.errors import Conflict, Forbidden, InvalidInput
from sync.models import OutboxEvent
from tests.conftest import Cli, write_csv
from tests.web.helpers import ADDR, HEADER, build_shelter
from app.db_crypto import connect as db_connect

NUMBER_RE = re.compile(r"^(R|H)-([0-9A-HJKMNP-TV-Z]{6})-(\d+)-(\d{6})$")
CAUSE = "令和8年11月20日の地震"


def pdf_text(data: bytes) -> str:
    """Every page's text with all whitespace (also U+3000) removed: layout must not decide a test."""
    import pypdf

    assert data.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return "".join("".join(p.extract_text().split()) for p in reader.pages).replace("\u3000", "")


def embedded_fonts(data: bytes) -> set[str]:
    """BaseFont names of the fonts whose file is inside the PDF (FontFile2 = embedded TrueType)."""
    import pypdf

    out = set()
    for font in pypdf.PdfReader(io.BytesIO(data)).pages[0]["/Resources"]["/Font"].values():
        desc = font.get_object().get("/FontDescriptor")
        if desc is not None and "/FontFile2" in desc.get_object():
            out.add(str(font.get_object()["/BaseFont"]).split("+")[-1])
    return out


def squash(s: str) -> str:
    return "".join(s.split()).replace("\u3000", "")


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_shelter(tmp_path)


@pytest.fixture
def engine(shelter):  # type: ignore[no-untyped-def]
    eng = open_shelter_db(shelter.db_path)
    yield eng
    eng.dispose()


def _session(engine) -> Session:  # type: ignore[no-untyped-def]
    return Session(engine, expire_on_commit=False)


def _confirm(engine, evacuee_id: str, resident_id: str, decision: str = "confirmed") -> None:  # type: ignore[no-untyped-def]
    from app.services.reconcile import staff_decide

    with _session(engine) as s:
        staff_decide(s, evacuee_id, decision, resident_id, by="佐藤")
        s.commit()


# --- the PDF shows every field -------------------------------------------------------------------

def test_risai_pdf_carries_every_field(engine) -> None:  # type: ignore[no-untyped-def]
    with _session(engine) as s:
        c = certs.issue(s, resident_id="1002", kind="risai", damage="中規模半壊", cause=CAUSE, in_person=True,
                        identity_note="運転免許証", by="窓口")
        s.commit()
        assert NUMBER_RE.match(c.number), c.number
        # the applicant is the wife; the head of household comes from the registry
        assert (c.head_name, c.head_address, c.location) == ("髙橋　一郎", ADDR, ADDR)
        assert c.damage == "chukibo" and c.identity == "in_person" and c.identity_note == "運転免許証"
        assert [m["name"] for m in c.members] == ["髙橋　一郎", "髙橋　京子", "髙橋　翔"]
        assert c.snapshot_id is not None and c.household_id == "H1" and not c.manual
        data = certs.pdf(s, c.number, by="窓口")
        s.commit()
    assert embedded_fonts(data) == {"IPAexGothic"}  # prints the same on any laptop: the font travels inside
    t = pdf_text(data)
    issued = wareki(c.issued_at.astimezone().date())
    for expected in ("り災証明書", f"整理番号第{c.number}号", "世帯主住所" + squash(ADDR), "世帯主氏名髙橋一郎",
                     "罹災原因" + CAUSE, "被災住家の所在地" + squash(ADDR), "住家の被害の程度",
                     "世帯構成員", "髙橋一郎世帯主昭和45年3月1日", "髙橋京子妻昭和47年11月3日", "髙橋翔子平成17年4月5日",
                     "上記のとおり相違ないことを証明します。", issued, "市町村長", "印"):
        assert expected in t, (expected, t)
    # exactly the applicable grade is marked, the other five are listed unmarked
    assert t.count("■") == 1 and "■中規模半壊" in t
    for ja in ("全壊", "大規模半壊", "半壊", "準半壊", "準半壊に至らない(一部損壊)"):
        assert "□" + ja in t, ja
    assert t.count("□") == 5
    assert "再発行" not in t and "手動" not in t


def test_each_grade_is_marked(engine) -> None:  # type: ignore[no-untyped-def]
    for n, (code, ja) in enumerate(certs.DAMAGE_GRADES):
        with _session(engine) as s:  # one cause per grade: the same household may hold one per disaster
            c = certs.issue(s, resident_id="1001", kind="risai", damage=code, cause=f"{CAUSE}{n}", in_person=True)
            s.commit()
            t = pdf_text(certs.pdf(s, c.number))
        assert t.count("■") == 1 and "■" + ja in t, code
        if code == "hankai":  # 半壊 is also the tail of 大規模半壊 / 中規模半壊 / 準半壊: those stay unmarked
            assert "□大規模半壊" in t and "□中規模半壊" in t and "□準半壊" in t


def test_issuer_name_and_location_override(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ANPI_CERT_ISSUER", "陸前高田市長　山田太郎")
    with _session(engine) as s:
        c = certs.issue(s, resident_id="1006", kind="risai", damage="zenkai", cause=CAUSE, in_person=True,
                        location="岩手県陸前高田市高田町2 倉庫", include_members=False, by="窓口")
        t = pdf_text(certs.pdf(s, c.number))
    assert "陸前高田市長山田太郎印" in t and "市町村長" not in t
    assert "被災住家の所在地岩手県陸前高田市高田町2倉庫" in t and "世帯主住所岩手県陸前高田市高田町2" in t
    assert "世帯構成員" not in t and c.members == []


def test_hisai_has_no_grade(engine) -> None:  # type: ignore[no-untyped-def]
    with _session(engine) as s:
        with pytest.raises(InvalidInput) as e:
            certs.issue(s, resident_id="1006", kind="hisai", damage="zenkai", cause=CAUSE, in_person=True)
        assert e.value.field == "damage"
        c = certs.issue(s, resident_id="1006", kind="被災証明書", cause="令和8年11月20日の津波", in_person=True, by="窓口")
        assert c.kind == "hisai" and c.damage == "" and c.number.startswith("H-")
        t = pdf_text(certs.pdf(s, c.number))
    assert "被災証明書" in t and "り災証明書" not in t
    assert "住家の被害の届出あり" in t and "上記のとおり被害の届出があったことを証明します。" in t
    assert "■" not in t and "□" not in t and "住家の被害の程度" not in t
    assert "罹災原因令和8年11月20日の津波" in t and "渡邉稔" in t


@pytest.mark.parametrize("typed,code", [
    ("全壊", "zenkai"), ("zenkai", "zenkai"), ("大規模半壊", "daikibo"), ("daikibo", "daikibo"),
    ("中規模半壊", "chukibo"), ("CHUKIBO", "chukibo"), ("半壊", "hankai"), ("hankai", "hankai"),
    ("準半壊", "junhankai"), ("junhankai", "junhankai"), ("準半壊に至らない(一部損壊)", "ichibu"),
    ("準半壊に至らない（一部損壊）", "ichibu"), ("一部損壊", "ichibu"), ("ichibu", "ichibu"), (" 全　壊 ", "zenkai"),
])
def test_damage_names_and_codes(typed: str, code: str) -> None:
    assert certs.parse_damage(typed) == code


def test_unknown_damage_lists_the_choices() -> None:
    with pytest.raises(InvalidInput) as e:
        certs.parse_damage("半分")
    assert "全壊" in str(e.value) and "junhankai" in str(e.value) and e.value.field == "damage"


# --- the household and the identity link ---------------------------------------------------------

def test_identity_must_come_from_a_match_or_the_desk(engine, shelter) -> None:  # type: ignore[no-untyped-def]
    with _session(engine) as s:
        with pytest.raises(InvalidInput) as e:
            certs.issue(s, resident_id="1006", kind="risai", damage="半壊", cause=CAUSE)
        assert e.value.field == "identity" and "in-person" in str(e.value)
    _confirm(engine, shelter.evacuee_ids["watanabe"], "1006")
    with _session(engine) as s:
        c = certs.issue(s, resident_id="1006", kind="risai", damage="半壊", cause=CAUSE, by="窓口")
        s.commit()
        assert c.identity == "match_confirmed" and c.evacuee_id == shelter.evacuee_ids["watanabe"]
    # a link staff later rejected no longer counts
    _confirm(engine, shelter.evacuee_ids["watanabe"], "1006", "rejected")
    with _session(engine) as s:
        assert certs.registry_link(s, "1006") is None
        with pytest.raises(InvalidInput):
            certs.issue(s, resident_id="1006", kind="hisai", cause=CAUSE)


def test_head_of_household_from_the_registry(tmp_path: Path) -> None:
    """世帯主 or 本人 is the head wherever they are listed; without either the applicant stands in."""
    from app.services.registry import import_registry

    rows = [
        ["2001", "K1", "岩手", "花子", "イワテ", "ハナコ", "", "S50.1.1", "2", "妻", "", "高田町5", ""],
        ["2002", "K1", "岩手", "太郎", "イワテ", "タロウ", "", "S48.1.1", "1", "本人", "", "高田町5", ""],
        ["2003", "K2", "宮城", "次郎", "ミヤギ", "ジロウ", "", "H1.2.3", "1", "子", "", "気仙町9", ""],
        ["2004", "", "福島", "三郎", "フクシマ", "サブロウ", "", "H2.2.3", "1", "", "", "米崎町1", ""],
    ]
    db = tmp_path / "h.db"
    engine = open_shelter_db(db)
    import_registry(engine, write_csv(tmp_path / "r.csv", [HEADER, *rows]), as_of=date(2026, 10, 31))
    with _session(engine) as s:
        hh = certs.household(s, "2001")
        assert hh.head.resident_id == "2002" and hh.head_found
        assert [m.resident_id for m in hh.members] == ["2002", "2001"]
        hh = certs.household(s, "2003")
        assert hh.head.resident_id == "2003" and not hh.head_found
        hh = certs.household(s, "2004")  # no 世帯番号: a household of one
        assert [m.resident_id for m in hh.members] == ["2004"]
        c = certs.issue(s, resident_id="2001", kind="risai", damage="準半壊", cause=CAUSE, in_person=True)
        assert c.head_name == "岩手　太郎"
    engine.dispose()


def test_restricted_household_needs_hq(engine) -> None:  # type: ignore[no-untyped-def]
    with _session(engine) as s:
        with pytest.raises(Forbidden):
            certs.issue(s, resident_id="1004", kind="risai", damage="全壊", cause=CAUSE, in_person=True,
                        allow_restricted=False)
        c = certs.issue(s, resident_id="1004", kind="risai", damage="全壊", cause=CAUSE, in_person=True,
                        allow_restricted=True)
        assert c.head_name == "山﨑　花"


# --- the manual path and characters the font lacks ------------------------------------------------

def test_manual_path_is_marked_and_keeps_the_registered_form(engine) -> None:  # type: ignore[no-untyped-def]
    members = certs.parse_members("𠮷田 花子, 妻, S50.1.2\n\n𠮷田 一,子,2010-04-01\n")
    with _session(engine) as s:
        c = certs.issue_manual(s, kind="risai", damage="ichibu", cause=CAUSE, name="𠮷田 太郎",
                               address="岩手県陸前高田市竹駒町3", members=members, note="転入届未処理", by="窓口")
        s.commit()
        stored = s.exec(select(Certificate).where(Certificate.number == c.number)).one()
        t = pdf_text(certs.pdf(s, c.number))
    assert stored.manual and stored.identity == "manual" and stored.resident_id == "" and stored.snapshot_id is None
    assert stored.head_name == "𠮷田 太郎" and stored.members[0]["name"] == "𠮷田 花子"  # the DB keeps 𠮷
    assert stored.manual_reason.startswith(certs.MANUAL_NOTE) and "転入届未処理" in stored.manual_reason
    assert "【手動】" in t and certs.MANUAL_NOTE in t
    assert "世帯主氏名吉田太郎" in t and "𠮷" not in t  # printed in the standard form
    assert "吉田花子妻昭和50年1月2日" in t and "吉田一子平成22年4月1日" in t
    assert "■準半壊に至らない(一部損壊)" in t and "世帯主住所岩手県陸前高田市竹駒町3" in t


def test_gaiji_without_a_standard_form_prints_as_geta() -> None:
    assert certs.printable("\ue000田") == "〓田"
    assert certs.printable("髙橋 𠮷") == "髙橋 吉"  # 髙 is in the font: kept as registered
    assert certs.folded_characters("𠮷田") == [("𠮷", "吉")]


# --- reissue and void -----------------------------------------------------------------------------

def test_reissue_keeps_the_number_and_is_logged(engine) -> None:  # type: ignore[no-untyped-def]
    with _session(engine) as s:
        c = certs.issue(s, resident_id="1007", kind="risai", damage="大規模半壊", cause=CAUSE, in_person=True, by="窓口")
        s.commit()
        r = certs.reissue(s, c.number.lower(), by="鈴木", reason="紛失")
        s.commit()
        assert r.number == c.number and r.reissue_count == 1
        t = pdf_text(certs.pdf(s, c.number))
        certs.reissue(s, c.number, by="鈴木")
        t2 = pdf_text(certs.pdf(s, c.number))
        s.commit()
        log = certs.history(s, c.number)
    assert "【再発行】第1回" in t and f"整理番号第{c.number}号" in t and "■大規模半壊" in t
    assert "【再発行】第2回" in t2
    assert [(e.action, e.reason, e.by_user) for e in log] == [("issue", "", "窓口"), ("reissue", "紛失", "鈴木"),
                                                                ("reissue", "", "鈴木")]


def test_void_needs_a_reason_and_blocks_reissue_and_printing(engine) -> None:  # type: ignore[no-untyped-def]
    with _session(engine) as s:
        c = certs.issue(s, resident_id="1005", kind="risai", damage="半壊", cause=CAUSE, in_person=True, by="窓口")
        s.commit()
        for reason in ("", "   "):
            with pytest.raises(InvalidInput) as e:
                certs.void(s, c.number, reason, by="窓口")
            assert e.value.field == "reason"
        certs.void(s, c.number, "世帯主氏名の誤記", by="窓口")
        s.commit()
        with pytest.raises(Conflict):
            certs.reissue(s, c.number, by="窓口")
        with pytest.raises(Conflict):
            certs.pdf(s, c.number)
        with pytest.raises(Conflict):
            certs.void(s, c.number, "二重", by="窓口")
        cert = certs.get_certificate(s, c.number)
        with pytest.raises(CertificateNotPrintable):  # the PDF writer refuses on its own too
            render_certificate_pdf(cert)
        assert cert.status == "void" and cert.void_reason == "世帯主氏名の誤記" and cert.reissue_count == 0
        assert [(e.action, e.reason) for e in certs.history(s, c.number)] == [("issue", ""), ("void", "世帯主氏名の誤記")]


def test_certificate_history_is_append_only(engine) -> None:  # type: ignore[no-untyped-def]
    with _session(engine) as s:
        c = certs.issue(s, resident_id="1001", kind="hisai", cause=CAUSE, in_person=True, by="窓口")
        s.commit()
    with engine.begin() as conn:
        with pytest.raises(Exception, match="append-only"):
            conn.execute(text("UPDATE certificateevent SET reason = 'x'"))
    with engine.begin() as conn:
        with pytest.raises(Exception, match="append-only"):
            conn.execute(text("DELETE FROM certificateevent"))
    with _session(engine) as s:
        assert len(certs.history(s, c.number)) == 1


def test_every_action_is_audited_and_synced(engine) -> None:  # type: ignore[no-untyped-def]
    with _session(engine) as s:
        c = certs.issue(s, resident_id="1001", kind="risai", damage="全壊", cause=CAUSE, in_person=True, by="窓口")
        certs.pdf(s, c.number, by="窓口")
        certs.reissue(s, c.number, by="窓口")
        certs.void(s, c.number, "誤発行", by="本部")
        s.commit()
        entries = [e for e in audit.query(s, audit.AuditFilter(subject=f"certificate:{c.number}"), newest_first=False)]
        assert [e.action for e in entries] == ["certificate_issue", "print", "certificate_reissue", "certificate_void"]
        assert "resident:1002" in entries[0].subjects and entries[-1].user_name == "本部"
        assert audit.verify(s).ok
        evs = [(e.type, json.loads(e.payload)) for e in s.exec(select(OutboxEvent).order_by(OutboxEvent.seq))
               if e.type.startswith("certificate.")]
    assert [t for t, _ in evs] == ["certificate.issued", "certificate.issued", "certificate.voided"]
    assert all(p["number"] == c.number for _, p in evs)
    assert evs[0][1]["damage"] == "zenkai" and evs[1][1]["reissue_of"] == c.number and evs[2][1]["reason"] == "誤発行"


def test_list_filters(engine) -> None:  # type: ignore[no-untyped-def]
    with _session(engine) as s:
        a = certs.issue(s, resident_id="1001", kind="risai", damage="全壊", cause=CAUSE, in_person=True)
        b = certs.issue(s, resident_id="1006", kind="hisai", cause=CAUSE, in_person=True)
        m = certs.issue_manual(s, kind="hisai", cause=CAUSE, name="岩手 一", address="竹駒町1")
        certs.void(s, b.number, "誤り")
        s.commit()
        nums = lambda f: {c.number for c in certs.list_certificates(s, f)}  # noqa: E731
        assert nums(None) == {a.number, b.number, m.number}
        assert nums(certs.CertificateFilter(kind="hisai")) == {b.number, m.number}
        assert nums(certs.CertificateFilter(status="void")) == {b.number}
        assert nums(certs.CertificateFilter(q="髙橋")) == {a.number}
        assert nums(certs.CertificateFilter(q="1006")) == {b.number}
        assert nums(certs.CertificateFilter(q=m.number[-6:])) >= {m.number}
        assert nums(certs.CertificateFilter(manual=True)) == {m.number}


# --- numbers: unique across laptops and across a restore ------------------------------------------

def _issue_manual(db: Path, kind: str = "risai") -> str:
    engine = open_shelter_db(db)
    try:
        with _session(engine) as s:
            c = certs.issue_manual(s, kind=kind, damage="全壊" if kind == "risai" else "", cause=CAUSE,
                                   name="岩手 一", address="高田町1", by="窓口")
            s.commit()
            return c.number
    finally:
        engine.dispose()


def test_numbers_are_unique_across_laptops_and_gap_free(tmp_path: Path) -> None:
    a = [_issue_manual(tmp_path / "a.db") for _ in range(3)] + [_issue_manual(tmp_path / "a.db", "hisai")]
    b = [_issue_manual(tmp_path / "b.db") for _ in range(3)] + [_issue_manual(tmp_path / "b.db", "hisai")]
    assert len(set(a + b)) == 8
    parsed_a = [NUMBER_RE.match(n).groups() for n in a]  # type: ignore[union-attr]
    parsed_b = [NUMBER_RE.match(n).groups() for n in b]  # type: ignore[union-attr]
    assert parsed_a[0][1] != parsed_b[0][1]  # two laptops, two device prefixes
    assert [p[3] for p in parsed_a] == ["000001", "000002", "000003", "000001"]  # per prefix: R and H
    assert [p[0] for p in parsed_a] == ["R", "R", "R", "H"] and {p[2] for p in parsed_a} == {"1"}
    engine = open_shelter_db(tmp_path / "a.db")
    with _session(engine) as s:
        from sync import outbox

        dev = outbox.get_device(s)
        assert dev is not None and certs.short_device_id(dev.device_id) == parsed_a[0][1]
        assert s.exec(select(Certificate).where(Certificate.number == a[0])).one().device_id == dev.device_id
    engine.dispose()


def test_a_rolled_back_issue_gives_its_number_back(tmp_path: Path) -> None:
    _issue_manual(tmp_path / "a.db", "hisai")  # H-…-000001, committed
    engine = open_shelter_db(tmp_path / "a.db")
    with _session(engine) as s:
        c = certs.issue_manual(s, kind="hisai", cause=CAUSE, name="岩手 一", address="高田町1")
        second = c.number
        s.rollback()
    with _session(engine) as s:
        c = certs.issue_manual(s, kind="hisai", cause=CAUSE, name="岩手 一", address="高田町1")
        s.commit()
        assert c.number == second and c.seq == 2
        assert len(s.exec(select(Certificate)).all()) == 2
    engine.dispose()


def _copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of a live WAL database, as `anpi backup` would take it."""
    with db_connect(src) as a, db_connect(dst) as b:
        a.backup(b)


def test_numbers_after_a_restore_never_repeat(tmp_path: Path) -> None:
    laptop = tmp_path / "laptop.db"
    before = _issue_manual(laptop)
    _copy_db(laptop, tmp_path / "backup.db")
    after = [_issue_manual(laptop), _issue_manual(laptop)]  # issued after the backup, then the laptop is lost

    # without a new epoch the restored copy would hand out a number that already exists on paper
    shutil.copy(tmp_path / "backup.db", tmp_path / "naive.db")
    assert _issue_manual(tmp_path / "naive.db") == after[0]

    restored = tmp_path / "restored.db"
    shutil.copy(tmp_path / "backup.db", restored)
    engine = open_shelter_db(restored)
    with _session(engine) as s:
        from sync.outbox import start_new_epoch

        assert start_new_epoch(s) == 2
        s.commit()
    engine.dispose()
    new = [_issue_manual(restored), _issue_manual(restored)]
    assert not set(new) & {before, *after}
    assert [NUMBER_RE.match(n).group(3) for n in new] == ["2", "2"]  # type: ignore[union-attr]
    assert NUMBER_RE.match(new[0]).group(2) == NUMBER_RE.match(before).group(2)  # same laptop, new epoch  # type: ignore[union-attr]


def test_short_device_id_is_stable_and_readable() -> None:
    sid = certs.short_device_id("01JD3S8ZQ6W0Y2K5H7N9P4R2TX")
    assert sid == certs.short_device_id("01JD3S8ZQ6W0Y2K5H7N9P4R2TX") and len(sid) == 6
    assert not set(sid) & set("ILOU")
    assert len({certs.short_device_id(f"device-{i}") for i in range(2000)}) == 2000


# --- CLI end to end -------------------------------------------------------------------------------

def test_cli_end_to_end(shelter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli = Cli(shelter.db_path)
    code, out, err = cli("certificate", "issue", "--resident-id", "1003", "--kind", "risai", "--damage", "chukibo",
                         "--cause", CAUSE, "--in-person", "--out", tmp_path / "c.pdf", "--by", "窓口 花子")
    assert code == 0, err
    number = out.strip()
    assert NUMBER_RE.match(number) and "c.pdf" in err
    t = pdf_text((tmp_path / "c.pdf").read_bytes())
    assert f"整理番号第{number}号" in t and "■中規模半壊" in t and "世帯主氏名髙橋一郎" in t and "髙橋翔子平成17年4月5日" in t

    # refusals: one line on stderr, non-zero exit, nothing stored
    for args, words in [
        (["--resident-id", "1007", "--kind", "risai", "--damage", "全壊", "--cause", CAUSE], "--in-person"),
        (["--resident-id", "1007", "--kind", "risai", "--damage", "半分", "--cause", CAUSE, "--in-person"], "zenkai"),
        (["--resident-id", "1007", "--kind", "hisai", "--damage", "全壊", "--cause", CAUSE, "--in-person"], "no damage"),
        (["--resident-id", "4242", "--kind", "hisai", "--cause", CAUSE, "--in-person"], "4242"),
        (["--kind", "hisai", "--cause", CAUSE], "--resident-id"),
        (["--manual", "--kind", "hisai", "--cause", CAUSE, "--address", "高田町"], "name"),
    ]:
        code, out, err = cli("certificate", "issue", *args)
        assert code == 1 and out == "" and err.startswith("error: ") and words in err, (args, err)
        assert len(err.strip().splitlines()) == 1

    code, out, err = cli("certificate", "issue", "--manual", "--name", "𠮷田 太郎", "--address", "陸前高田市竹駒町3",
                         "--kind", "hisai", "--cause", CAUSE, "--member", "𠮷田 花子,妻,S50.1.2",
                         "--out", tmp_path / "m.pdf")
    assert code == 0, err
    manual = out.strip()
    assert manual.startswith("H-")
    t = pdf_text((tmp_path / "m.pdf").read_bytes())
    assert "【手動】" in t and "吉田太郎" in t and "吉田花子妻昭和50年1月2日" in t

    rows = cli.json("certificate", "list", "--json")
    assert {r["number"] for r in rows} == {number, manual}  # type: ignore[union-attr]
    row = next(r for r in rows if r["number"] == number)  # type: ignore[union-attr]
    assert row["issued_by"] == "窓口 花子" and row["damage"] == "chukibo" and row["damage_ja"] == "中規模半壊"
    assert next(r for r in rows if r["number"] == manual)["manual"] is True  # type: ignore[union-attr]

    code, out, err = cli("certificate", "reissue", number, "--reason", "紛失", "--out", tmp_path / "r.pdf")
    assert code == 0 and number in out, err
    assert "【再発行】第1回" in pdf_text((tmp_path / "r.pdf").read_bytes())

    code, out, err = cli("certificate", "void", number)
    assert code == 1 and "reason" in err
    code, out, err = cli("certificate", "void", number, "--reason", "記載誤り", "--by", "本部")
    assert code == 0 and "記載誤り" in out
    code, out, err = cli("certificate", "reissue", number, "--out", tmp_path / "x.pdf")
    assert code == 1 and "void" in err and not (tmp_path / "x.pdf").exists()
    code, out, err = cli("certificate", "void", "R-NOSUCH-1-000001", "--reason", "x")
    assert code == 1 and "no certificate" in err

    rows = cli.json("certificate", "list", "--json", "--status", "void")
    assert [(r["number"], r["reissue_count"], r["void_reason"]) for r in rows] == [(number, 1, "記載誤り")]  # type: ignore[index]
    code, out, err = cli("certificate", "list")
    assert code == 0 and manual in out and "手動" in out and "無効" in out
    code, out, _ = cli("audit", "verify")
    assert code == 0


def test_cli_numbers_after_anpi_backup_and_restore(shelter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The real commands: a laptop restored from last night's backup never repeats a number."""
    cli = Cli(shelter.db_path)
    args = ["certificate", "issue", "--kind", "hisai", "--cause", CAUSE, "--in-person", "--resident-id"]
    code, out, err = cli(*args, "1001")
    assert code == 0, err
    before = out.strip()
    code, _, err = cli("backup", "--out", tmp_path / "usb.db")
    assert code == 0, err
    after = []
    for rid in ("1005", "1006"):  # issued after the backup; then the laptop breaks
        code, out, err = cli(*args, rid)
        assert code == 0, err
        after.append(out.strip())
    code, _, err = cli("restore", tmp_path / "usb.db", "--yes")
    assert code == 0, err
    code, out, err = cli(*args, "1007")
    assert code == 0, err
    new = out.strip()
    assert new not in {before, *after}
    assert NUMBER_RE.match(new).group(3) != NUMBER_RE.match(after[0]).group(3)  # type: ignore[union-attr]
    assert {r["number"] for r in cli.json("certificate", "list", "--json")} == {before, new}  # type: ignore[union-attr]


def test_font_is_our_own_package_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """IPAexGothic ships inside app/formats/ipafont/ with its licence (no japanize-matplotlib needed)."""
    from app.formats import fonts

    monkeypatch.delenv("ANPI_FONT_PATH", raising=False)
    assert fonts.font_path() == fonts.FONT_DIR / "ipaexg.ttf"
    assert (fonts.FONT_DIR / "IPA_Font_License_Agreement_v1.0.txt").is_file()
