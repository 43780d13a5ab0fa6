"""掲示用名簿: the list for the shelter wall and the town's website (PDF A4/A3, or CSV).

Who is on it, and only this (each line is a rule, not a preference):

- people in this shelter now (在所) who consented to ⑭ 公表 (`consent_public is True`; 未確認 is no);
- never a protected person: the one 閲覧制限 rule for an output that leaves the building
  (`disclosure.CALLER_PUBLICATION`) leaves out the flagged person *and their whole household*;
- the address only as 町字 (`anpi_towns.town_spelling`: 「高田町館の沖」, never the house number);
- in 五十音 order by reading (the reading typed at intake, else the name's dictionary reading).

The shelter name and the time of printing head every page (and stand in every CSV row), so an
old sheet on the wall is recognisably old. Every export is audited with the evacuees it holds.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from app.models import Evacuee
from app.services import audit, disclosure
from app.services.anpi_towns import name_reading, town_spelling
from app.services.errors import InvalidInput
from app.services.evacuees import full_name
from app.services.shelters import current_shelter
from sync.files import atomic_write_bytes

FORMATS = ("pdf", "csv")
PAPERS = ("a4", "a3")
HEADER = ["ふりがな", "氏名", "町字", "避難所", "作成日時"]
_SMALL = str.maketrans("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ")


@dataclass(frozen=True)
class NoticeRow:
    evacuee_id: str
    reading: str
    name: str
    town: str


@dataclass(frozen=True)
class Noticeboard:
    shelter_name: str
    made_at: datetime
    rows: list[NoticeRow]
    left_out_restricted: int  # consented, but protected by the 閲覧制限 rule


def gojuon_key(reading: str) -> tuple[str, str]:
    """五十音 order: voiced and small kana sort with their plain letter (が with か), then exactly."""
    from matching.kana import to_katakana

    kata = to_katakana(unicodedata.normalize("NFKC", reading or ""))
    plain = "".join(c for c in unicodedata.normalize("NFD", kata) if c not in "\u3099\u309a").translate(_SMALL)
    return ("".join(plain.split()), kata)


def build(session: Session, *, now: datetime | None = None) -> Noticeboard:
    """Who is on the wall right now (module notes)."""
    prot = disclosure.protected(session)
    rows, left_out = [], 0
    for ev in session.exec(select(Evacuee).where(Evacuee.status == "in_shelter", Evacuee.consent_public == True)):  # noqa: E712
        if not disclosure.shown_evacuee(disclosure.CALLER_PUBLICATION, prot, ev.id).listed:
            left_out += 1
            continue
        name = full_name(ev) or ev.name_kana_raw
        reading = ev.name_kana or ev.name_kana_raw or name_reading(name)
        rows.append(NoticeRow(ev.id, reading, name, town_spelling(ev.address or ev.address_raw)))
    rows.sort(key=lambda r: (gojuon_key(r.reading), r.name, r.evacuee_id))
    return Noticeboard(current_shelter(session).name, (now or datetime.now()).astimezone(), rows, left_out)


def made_text(nb: Noticeboard) -> str:
    return nb.made_at.strftime("%Y年%m月%d日 %H:%M")


def csv_bytes(nb: Noticeboard) -> bytes:
    """UTF-8 with BOM (Excel and web CMSes read it), through the one table writer."""
    from app.formats.tables import csv_writer

    buf = io.StringIO()
    w = csv_writer(buf, lineterminator="\r\n")
    w.writerow(HEADER)
    made = made_text(nb)
    w.writerows([r.reading, r.name, r.town, nb.shelter_name, made] for r in nb.rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def render(nb: Noticeboard, fmt: str, paper: str = "a4") -> bytes:
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r} (pdf or csv)", "出力形式は PDF か CSV です", "format")
    if paper not in PAPERS:
        raise InvalidInput(f"unknown paper {paper!r} (a4 or a3)", "用紙は A4 か A3 です", "paper")
    if fmt == "csv":
        return csv_bytes(nb)
    from app.formats.noticeboard_pdf import render_noticeboard_pdf

    return render_noticeboard_pdf(nb.shelter_name, made_text(nb), [(r.reading, r.name, r.town) for r in nb.rows],
                                  paper=paper)


def export(session: Session, *, fmt: str, paper: str = "a4", by: Any = "", screen: str = "cli: anpi export noticeboard",
           out: Path | None = None) -> tuple[Noticeboard, bytes]:
    """Build, render and audit (caller commits); written to `out` atomically when given."""
    nb = build(session)
    data = render(nb, fmt, paper)
    if out is not None:
        atomic_write_bytes(out, data)
    audit.record(session, by, "export", screen, [f"evacuee:{r.evacuee_id}" for r in nb.rows], {
        "list": "noticeboard", "format": fmt, "paper": paper if fmt == "pdf" else "",
        "file": out.name if out is not None else "", "rows": len(nb.rows), "restricted_excluded": nb.left_out_restricted})
    return nb, data
