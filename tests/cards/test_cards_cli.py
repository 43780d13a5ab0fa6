"""避難者カード on the command line: printed, decoded from the PDF by a real QR decoder (zxing-cpp on a
page rendered by pdfium), checked by `anpi card verify`; forged and altered cards refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlmodel import Session

from app.db import open_shelter_db
from app.services.roster import EvacueeInput, register, register_household
from tests.conftest import Cli
from tests.web.helpers import build_shelter


def qr_texts(pdf: bytes) -> list[str]:
    """The QR text of every page, as a phone or scanner would read the paper (300 dpi)."""
    import pypdfium2 as pdfium
    import zxingcpp

    out = []
    for page in pdfium.PdfDocument(pdf):
        found = zxingcpp.read_barcodes(page.render(scale=300 / 72).to_pil())
        assert len(found) == 1, "one QR code per card"
        out.append(found[0].text)
    return out


def pdf_text(pdf: bytes) -> list[str]:
    import pypdf

    return ["".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_shelter(tmp_path)


def test_card_printed_decoded_and_verified(shelter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli = Cli(shelter.db_path)
    ids = [shelter.evacuee_ids["watanabe"], shelter.evacuee_ids["sasaki"]]
    for size in ("a6", "label62"):
        out = tmp_path / f"cards-{size}.pdf"
        code, stdout, err = cli("card", "print", *ids, "--out", out, "--size", size)
        assert code == 0, err
        assert "2 cards written" in stdout and "this laptop's own key" in stdout  # never enrolled
        pdf = out.read_bytes()
        texts = qr_texts(pdf)
        pages = pdf_text(pdf)
        assert "渡辺稔" in pages[0] and "避難所" in pages[0] and "避難者カード" in pages[0]
        for eid, text in zip(ids, texts):
            assert "渡辺" not in text and "ワタナベ" not in text and "1955" not in text  # nothing readable
            code, stdout, err = cli("card", "verify", text)
            assert code == 0, err
            assert stdout.strip() == eid
    # altered: another evacuee id, another shelter code, a flipped character in the sealed items or the tag
    text = texts[0]
    parts = text.split(":")
    forged = [":".join([*parts[:2], ids[1], *parts[3:]]), ":".join([*parts[:3], "OTHER", *parts[4:]]),
              ":".join([*parts[:4], parts[4][:10] + ("A" if parts[4][10] != "A" else "B") + parts[4][11:], parts[5]]),
              text[:-1] + ("A" if text[-1] != "A" else "B")]
    for bad in forged:
        code, stdout, err = cli("card", "verify", bad)
        assert code == 1 and stdout == ""
        assert "偽造または改ざん" in err
    code, _, err = cli("card", "verify", "こんにちは")
    assert code == 1 and "QRコードではありません" in err
    # a card of another laptop that was never enrolled: its own key, unknown here
    other = Cli(tmp_path / "other.db")
    eng = open_shelter_db(tmp_path / "other.db")
    with Session(eng) as s:
        eid = register(s, EvacueeInput(name="佐藤 花子", birth_date="1980-01-01"), by="t").id
        s.commit()
    eng.dispose()
    assert other("card", "print", eid, "--out", tmp_path / "o.pdf")[0] == 0
    foreign = qr_texts((tmp_path / "o.pdf").read_bytes())[0]
    code, _, err = cli("card", "verify", foreign)
    assert code == 1 and "確かめられません" in err
    assert other("card", "verify", foreign)[0] == 0


def test_protected_person_gets_a_blind_card(shelter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """閲覧制限 (care flag) and the household registered with them: no shelter, no sealed items."""
    eng = open_shelter_db(shelter.db_path)
    with Session(eng) as s:
        mother, child = register_household(s, [
            EvacueeInput(name="山田 花", birth_date="1990-01-01", sex="女", care_flags={"restricted": True}),
            EvacueeInput(name="山田 空", birth_date="2015-01-01", sex="男")], by="t")
        ids = [mother.id, child.id]
        s.commit()
    eng.dispose()
    cli = Cli(shelter.db_path)
    out = tmp_path / "blind.pdf"
    code, _, err = cli("card", "print", *ids, "--out", out)
    assert code == 0 and "2 cards printed without shelter" in err
    pdf = out.read_bytes()
    for page, text, eid in zip(pdf_text(pdf), qr_texts(pdf), ids):
        assert "避難所" not in page.replace("別の避難所でも", "")  # the shelter's name is 避難所 in this fixture
        _, kid, card_id, shelter_code, sealed, _tag = text.split(":")
        assert (card_id, shelter_code, sealed) == (eid, "", "")
        assert cli("card", "verify", text)[1].strip() == eid
