"""Issue 12 item 2: the shelter's certificate desk and a household under 閲覧制限 (as the hub does)."""

from __future__ import annotations

from sqlmodel import Session

from tests.disclosure.conftest import MOTHER_ADDR
from tests.web.helpers import client_as


def _issue_for_child(app) -> str:  # type: ignore[no-untyped-def]
    """HQ (the operator) issues a certificate for the child 1009; the flagged mother 1004 heads H2."""
    from app.services import certificates as certs

    with Session(app.state.engine, expire_on_commit=False) as s:
        cert = certs.issue(s, resident_id="1009", kind="risai", damage="zenkai", cause="令和8年11月20日の地震",
                           location=MOTHER_ADDR, in_person=True, identity_note="運転免許証", by="本部")
        s.commit()
    return cert.number


def test_desk_list_detail_and_pdf_hide_the_flagged_head(app) -> None:  # type: ignore[no-untyped-def]
    number = _issue_for_child(app)
    desk = client_as(app, "窓口")
    for page in (desk.get("/desk/certificates"), desk.get(f"/desk/certificates/{number}")):
        assert page.status_code == 200
        assert number in page.text
        assert "米崎町" not in page.text and "（閲覧制限）" in page.text
    assert desk.get(f"/desk/certificates/{number}/pdf").status_code == 403
    assert desk.get(f"/desk/certificates/{number}/print").status_code == 403
    # the address search never finds the protected household
    assert number not in desk.get("/desk/certificates", params={"q": "米崎町"}).text


def test_hq_still_sees_and_prints_it(app) -> None:  # type: ignore[no-untyped-def]
    number = _issue_for_child(app)
    hq = client_as(app, "本部")
    assert "米崎町" in hq.get(f"/desk/certificates/{number}").text
    r = hq.get(f"/desk/certificates/{number}/pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
