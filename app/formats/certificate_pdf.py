"""A4 PDF of a り災証明書 / 被災証明書, laid out after the Cabinet Office unified format (内閣府 統一様式).

Why reportlab's platypus and not a hand-placed canvas: addresses and causes are free text of any
length; Paragraph wraps Japanese text (wordWrap="CJK") inside table cells, so a long 方書 never
runs off the page. The font is IPAexGothic, embedded (subset) in every file, so the paper looks
the same on any donated laptop and printer (see app.formats.fonts).

The registered form of a name is kept in the database (髙橋, 𠮷田, municipal gaiji). The font lacks
a few characters (non-BMP kanji such as 𠮷, private-use gaiji); those alone are folded to their
standard form for printing (matching.kanji's variant table: 𠮷→吉), and a character with no
standard form prints as 〓 (geta), the mark Japanese offices use for "a character that cannot be
printed" — never silently dropped.

A void certificate is refused here as well as in the service: a voided number must never reach
paper again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, Protocol, Sequence
from xml.sax.saxutils import escape

from app.formats.fonts import register_japanese_font
from matching.dates import era_of
from matching.kanji import fold_variant_char

#: 住家の被害の程度 (災害に係る住家の被害認定基準), in the order the unified format lists them: code → label
DAMAGE_GRADES: tuple[tuple[str, str], ...] = (
    ("zenkai", "全壊"),
    ("daikibo", "大規模半壊"),
    ("chukibo", "中規模半壊"),
    ("hankai", "半壊"),
    ("junhankai", "準半壊"),
    ("ichibu", "準半壊に至らない(一部損壊)"),
)
DAMAGE_JA = dict(DAMAGE_GRADES)
KIND_JA = {"risai": "り災証明書", "hisai": "被災証明書"}
CERTIFY_RISAI = "上記のとおり相違ないことを証明します。"
CERTIFY_HISAI = "上記のとおり被害の届出があったことを証明します。"
MANUAL_NOTE = "台帳で確認できないため申請者の申告による"
GETA = "〓"


class CertificateNotPrintable(ValueError):
    """The certificate may not be printed (it was voided)."""


class PrintableCertificate(Protocol):
    """What the PDF needs (app.models.Certificate has all of it)."""

    number: str
    kind: str
    head_address: str
    head_name: str
    cause: str
    location: str
    damage: str
    members: list[dict[str, Any]]
    manual: bool
    manual_reason: str
    issued_at: datetime
    reissue_count: int
    status: str


# --- text helpers shared with the HTML print view ------------------------------------------------

def wareki(d: date | None) -> str:
    """令和8年11月27日 (元年 for the first year); western form before 明治."""
    if d is None:
        return ""
    era = era_of(d)
    if era is None:
        return f"{d.year}年{d.month}月{d.day}日"
    y = d.year - era.start.year + 1
    return f"{era.name}{'元' if y == 1 else y}年{d.month}月{d.day}日"


def local_date(at: datetime) -> date:
    """Stored times are UTC; the paper carries the date at the desk (the laptop's time zone)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone().date()


def birth_text(value: Any) -> str:
    """A member's birth date as stored (ISO text or empty) in 和暦, or the raw text when not a date."""
    if not value:
        return ""
    try:
        return wareki(date.fromisoformat(str(value)))
    except ValueError:
        return str(value)


@lru_cache(maxsize=1)
def _font_chars() -> frozenset[int]:
    from reportlab.pdfbase import pdfmetrics

    font = pdfmetrics.getFont(register_japanese_font())
    return frozenset(font.face.charToGlyph)  # type: ignore[attr-defined]


def printable(text: str) -> str:
    """`text` with every character the embedded font lacks folded to its standard form, or 〓."""
    chars = _font_chars()
    out = []
    for ch in text:
        if ord(ch) in chars or ch in "\n\t":
            out.append(ch)
            continue
        folded = fold_variant_char(ch)
        out.append(folded if folded != ch and all(ord(c) in chars for c in folded) else GETA)
    return "".join(out)


def folded_characters(text: str) -> list[tuple[str, str]]:
    """(registered, printed) for each character `printable` changes: shown to the desk before printing."""
    return [(a, b) for a, b in zip(text, printable(text)) if a != b]


# --- the document ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Issuer:
    """Who certifies: 市町村長 name (e.g. 陸前高田市長　山田太郎); empty → a line to sign on paper."""

    name: str = ""


def _p(text: str, style: Any) -> Any:
    from reportlab.platypus import Paragraph

    return Paragraph(escape(printable(text)).replace("\n", "<br/>"), style)


def render_certificate_pdf(cert: PrintableCertificate, *, issuer: Issuer | None = None,
                           reissued_at: datetime | None = None) -> bytes:
    """The certificate as PDF bytes (A4 portrait, one page for any household of up to ~15 people)."""
    if cert.status != "issued":
        raise CertificateNotPrintable(f"certificate {cert.number} is {cert.status} and cannot be printed")
    if cert.kind not in KIND_JA:
        raise CertificateNotPrintable(f"certificate {cert.number} has unknown kind {cert.kind!r}")
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER, TA_RIGHT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate, Spacer, Table, TableStyle

    font = register_japanese_font()
    issuer = issuer or Issuer()
    base = ParagraphStyle("base", fontName=font, fontSize=11, leading=16, wordWrap="CJK")
    small = ParagraphStyle("small", parent=base, fontSize=9, leading=12)
    label = ParagraphStyle("label", parent=base, fontSize=10.5)
    title = ParagraphStyle("title", parent=base, fontSize=22, leading=30, alignment=TA_CENTER)
    right = ParagraphStyle("right", parent=base, alignment=TA_RIGHT)
    marker = ParagraphStyle("marker", parent=base, fontSize=12, textColor=colors.HexColor("#b00020"))

    story: list[Any] = []
    marks = []
    if cert.reissue_count > 0:
        when = f"（再発行日 {wareki(local_date(reissued_at))}）" if reissued_at else ""
        marks.append(f"【再発行】第{cert.reissue_count}回{when}")
    if cert.manual:
        marks.append("【手動】申請者の申告による")
    story.append(_p("　".join(marks), marker) if marks else Spacer(1, 16))
    story.append(_p(f"整理番号　第 {cert.number} 号", right))
    story.append(_p(wareki(local_date(cert.issued_at)), right))
    story.append(Spacer(1, 6 * mm))
    story.append(_p(KIND_JA[cert.kind], title))
    story.append(Spacer(1, 6 * mm))

    rows: list[list[Any]] = [
        [_p("世帯主住所", label), _p(cert.head_address, base)],
        [_p("世帯主氏名", label), _p(cert.head_name, base)],
        [_p("罹災原因", label), _p(cert.cause, base)],
        [_p("被災住家の所在地", label), _p(cert.location, base)],
    ]
    if cert.kind == "risai":
        grades = [_p(("■ " if code == cert.damage else "□ ") + ja, base) for code, ja in DAMAGE_GRADES]
        grid = Table([grades[0:3], grades[3:6]], colWidths=[33 * mm, 38 * mm, 59 * mm])
        grid.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        rows.append([_p("住家の被害の程度", label), grid])
    else:
        rows.append([_p("被害の状況", label), _p("住家の被害の届出あり", base)])
    main = Table(rows, colWidths=[38 * mm, 134 * mm])
    main.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.7, colors.black),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#eeeeee")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]))
    story.append(main)

    members: Sequence[dict[str, Any]] = cert.members or []
    if members:
        story.append(Spacer(1, 5 * mm))
        story.append(_p("世帯構成員", label))
        mrows = [[_p("氏名", label), _p("続柄", label), _p("生年月日", label)]]
        for m in members:
            mrows.append([_p(str(m.get("name", "")), base), _p(str(m.get("relationship", "")), base),
                          _p(birth_text(m.get("birth_date")), base)])
        mt = Table(mrows, colWidths=[72 * mm, 40 * mm, 60 * mm], repeatRows=1)
        mt.setStyle(TableStyle([
            ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
            ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ]))
        story.append(mt)

    if cert.manual:
        story.append(Spacer(1, 3 * mm))
        story.append(_p(f"※ {cert.manual_reason or MANUAL_NOTE}", small))
    story.append(Spacer(1, 10 * mm))
    story.append(_p(CERTIFY_RISAI if cert.kind == "risai" else CERTIFY_HISAI, base))
    story.append(Spacer(1, 8 * mm))
    story.append(_p(wareki(local_date(cert.issued_at)), right))
    story.append(Spacer(1, 4 * mm))
    signer = f"{issuer.name}　印" if issuer.name.strip() else "＿＿＿＿＿＿＿＿＿＿ 市町村長　＿＿＿＿＿＿＿＿　印"
    story.append(_p(signer, right))

    buf = io.BytesIO()

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.drawString(20 * mm, 12 * mm, printable(f"整理番号 {cert.number}"))
        canvas.restoreState()

    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=19 * mm, rightMargin=19 * mm, topMargin=18 * mm,
                            bottomMargin=20 * mm, title=f"{KIND_JA[cert.kind]} {cert.number}", author="Anpi",
                            subject=KIND_JA[cert.kind])
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
