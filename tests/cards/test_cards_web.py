"""避難者カード and 掲示用名簿 through the staff UI's HTTP routes (real app, real shelter file): a
protected person's card is blind, the noticeboard leaves them and their household out, a forged
scan is refused in Japanese, and every print and scan is in the audit log."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlmodel import Session

from app.db import open_shelter_db
from app.services.roster import EvacueeInput, register_household
from tests.cards.test_cards_cli import pdf_text, qr_texts
from tests.web.helpers import build_shelter, client_as, csrf_of, shelter_app


@pytest.fixture
def shelter(tmp_path: Path):  # type: ignore[no-untyped-def]
    sh = build_shelter(tmp_path)
    eng = open_shelter_db(sh.db_path)
    with Session(eng) as s:
        mother, child = register_household(s, [
            EvacueeInput(name="秘匿 母", birth_date="1990-01-01", consent_public=True, care_flags={"restricted": True}),
            EvacueeInput(name="秘匿 子", birth_date="2015-01-01", consent_public=True)], by="t")
        open_one = register_household(s, [EvacueeInput(name="公開 太郎", name_kana="コウカイ タロウ", birth_date="1980-01-01",
                                                       consent_public=True, address="岩手県陸前高田市米崎町2-1")], by="t")[0]
        sh.evacuee_ids.update(mother=mother.id, child=child.id, open=open_one.id)
        s.commit()
    eng.dispose()
    return sh


@pytest.fixture
def app(shelter):  # type: ignore[no-untyped-def]
    yield from shelter_app(shelter.db_path)


def test_cards_and_noticeboard_over_http(app, shelter) -> None:  # type: ignore[no-untyped-def]
    c = client_as(app, "佐藤")
    token = csrf_of(c.get("/desk/scan").text)
    ids = [shelter.evacuee_ids[k] for k in ("open", "mother", "child")]
    r = c.post("/cards/print", data={"csrf_token": token, "ids": ids, "size": "label62"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pages, texts = pdf_text(r.content), qr_texts(r.content)
    assert "公開太郎" in pages[0] and "避難所" in pages[0].replace("別の避難所でも", "")
    for page, text in zip(pages[1:], texts[1:]):
        assert "避難所" not in page.replace("別の避難所でも", "")
        assert text.split(":")[3:5] == ["", ""]
    assert c.post("/cards/print", data={"csrf_token": token, "ids": ids, "size": "b5"}).status_code == 422

    page = c.post("/desk/scan", data={"csrf_token": token, "text": texts[0][:-2] + "xx"})
    assert page.status_code == 422 and "偽造または改ざん" in page.text
    page = c.post("/desk/scan", data={"csrf_token": token, "text": texts[0]})
    assert page.status_code == 200 and "すでにこの避難所に在所しています" in page.text

    r = c.get("/noticeboard?format=csv")
    assert r.status_code == 200
    body = r.content.decode("utf-8-sig")
    assert "公開 太郎" in body and "米崎町" in body and "2-1" not in body and "秘匿" not in body
    import pypdf

    r = c.get("/noticeboard?format=pdf&paper=a3")
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    assert "公開 太郎" in text and "秘匿" not in text

    admin = client_as(app, "管理")
    log = admin.get("/admin/audit").text
    assert "避難者カード印刷" in log and "カード読取" in log and "掲示用名簿" in log
