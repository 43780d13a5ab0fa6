"""Issue 12 item 3 at the shelter: only the mother (1004) is flagged; her child (1009, same 世帯番号
H2) registers here. Nothing about the child may tell where the mother is."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from tests.disclosure.conftest import register_child
from tests.web.helpers import client_as


def test_inquiry_about_the_child_answers_nothing(app) -> None:  # type: ignore[no-untyped-def]
    from app.services.inquiry import InquiryRequest, answer_inquiry

    register_child(app)
    with Session(app.state.engine) as s:
        res = answer_inquiry(s, InquiryRequest(inquirer_name="岩手 太郎", inquirer_address="盛岡市内丸1",
                                               id_proof="運転免許証", relationship="同居の親族",
                                               sought_name="山﨑 陽", sought_birth="2015-04-01"),
                             user="窓口", screen="test")
        s.commit()
        assert res.inquiry is not None
        assert res.inquiry.outcome == "restricted" and res.inquiry.items_disclosed == []


def test_inquiry_about_someone_who_registered_with_the_mother_answers_nothing(app) -> None:  # type: ignore[no-untyped-def]
    """The intake household: a friend typed into the mother's household at intake is protected too."""
    from app.services.inquiry import InquiryRequest, answer_inquiry
    from app.services.reconcile import reconcile_all
    from app.services.roster import EvacueeInput, register_household

    with Session(app.state.engine, expire_on_commit=False) as s:
        register_household(s, [EvacueeInput(name="山﨑 花", birth_date="1999-12-31", sex="女"),
                               EvacueeInput(name="岩手 友子", birth_date="1998-01-01", sex="女")], by="佐藤")
        s.commit()
    reconcile_all(app.state.engine)
    with Session(app.state.engine) as s:
        res = answer_inquiry(s, InquiryRequest(inquirer_name="岩手 太郎", inquirer_address="盛岡市内丸1",
                                               id_proof="運転免許証", relationship="同居の親族",
                                               sought_name="岩手 友子", sought_birth="1998-01-01"),
                             user="窓口", screen="test")
        assert res.inquiry is not None and res.inquiry.outcome == "restricted"


def test_hq_exports_leave_out_the_whole_household(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from app.services.anpi_list import export_anpi_list

    register_child(app)
    for fmt in ("csv", "xlsx", "pdf"):
        out = tmp_path / f"list.{fmt}"
        with Session(app.state.engine) as s:
            export_anpi_list(s, out, fmt=fmt, by="本部")
            s.commit()
        if fmt == "csv":
            text = out.read_text(encoding="utf-8-sig")
            assert "1009" not in text and "山﨑" not in text and "米崎町" not in text
            assert "1001" in text  # the others are there
        if fmt == "xlsx":
            import openpyxl

            wb = openpyxl.load_workbook(out)
            cells = " ".join(str(c.value) for ws in wb.worksheets for row in ws.iter_rows() for c in row)
            assert "1009" not in cells and "山﨑" not in cells
    hq = client_as(app, "本部")
    r = hq.get("/hq/export", params={"format": "csv"})
    assert r.status_code == 200 and "1009" not in r.text


def test_sought_link_to_the_child_is_hidden_from_the_desk(app, family_shelter) -> None:  # type: ignore[no-untyped-def]
    from app.formats.pfif import PfifPerson, write_pfif
    from tests.app.test_pfif_import import T0
    from tests.web.test_sought import upload

    register_child(app)
    desk = client_as(app, "窓口")
    doc = write_pfif([PfifPerson("pf.example.org/hinata", source_date=T0, full_name="山崎 陽", sex="female",
                                 date_of_birth="2015-04-01", author_name="父")])
    assert upload(desk, "sought.xml", doc).status_code == 200
    html = desk.get("/desk/sought").text
    for secret in ("1009", "山﨑", "米崎町", "H2"):
        assert secret not in html, secret
    assert "1009" in client_as(app, "本部").get("/desk/sought").text


def test_roster_csv_leaves_out_the_child(app) -> None:  # type: ignore[no-untyped-def]
    register_child(app)
    r = client_as(app, "本部").get("/api/evacuees/export.csv")
    assert r.status_code == 200
    assert "山﨑" not in r.text and "米崎町" not in r.text
    assert "渡辺" in r.text  # the others are there
