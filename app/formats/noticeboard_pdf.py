"""掲示用名簿 as PDF: A4 or A3 portrait, large type, for a shelter wall (and a town's website).

Why a plain three-column table in big type: people read it standing, from a metre away, looking
for one name; 五十音 order (done by the service) and the reading in its own column let them find
it. The shelter name, the time it was made and the page number head every page, so a stale sheet
is recognisably stale. Characters the embedded font lacks are folded (app.formats.certificate_pdf).
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from app.formats.certificate_pdf import printable
from app.formats.fonts import register_japanese_font

#: body type size per paper (points): ~6 mm tall on A4, ~8 mm on A3
TYPE_PT = {"a4": 16.0, "a3": 22.0}
TITLE = "避難者名簿（掲示用）"
NOTE = "公表に同意された方のみ掲載しています。住所は町字までです。"


def render_noticeboard_pdf(shelter_name: str, made: str, rows: list[tuple[str, str, str]], *, paper: str = "a4") -> bytes:
    """`rows` are (reading, name, 町字) in the order to print."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A3, A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = register_japanese_font()
    size = TYPE_PT[paper]
    pagesize = A3 if paper == "a3" else A4
    body = ParagraphStyle("body", fontName=font, fontSize=size, leading=size * 1.35, wordWrap="CJK")
    small = ParagraphStyle("small", parent=body, fontSize=size * 0.6, leading=size * 0.8)
    head = ParagraphStyle("head", parent=body, fontSize=size * 0.75, leading=size, textColor=colors.white)

    def p(text: str, style: Any) -> Any:
        return Paragraph(escape(printable(text)), style)

    width = pagesize[0] - 30 * mm
    data = [[p("ふりがな", head), p("氏名", head), p("町字", head)]]
    data += [[p(r, small), p(n, body), p(t, body)] for r, n, t in rows]
    if not rows:
        data.append([p("", small), p("掲載できる方はいません", body), p("", body)])
    table = Table(data, colWidths=[width * 0.3, width * 0.38, width * 0.32], repeatRows=1)
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#333333")),
        ("LINEBELOW", (0, 0), (-1, -1), 0.5, colors.HexColor("#888888")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f2f2")]),
    ]))
    heading = f"{TITLE}　{shelter_name}　{made} 現在"

    def on_page(c: Any, doc: Any) -> None:
        c.saveState()
        c.setFont(font, size * 0.9)
        c.drawString(15 * mm, pagesize[1] - 14 * mm, printable(heading))
        c.setFont(font, size * 0.55)
        c.drawString(15 * mm, 9 * mm, printable(NOTE))
        c.drawRightString(pagesize[0] - 15 * mm, 9 * mm, f"{doc.page}")
        c.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=pagesize, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=22 * mm,
                            bottomMargin=16 * mm, title=f"{TITLE} {shelter_name}", author="Anpi")
    doc.build([Spacer(1, 2 * mm), table], onFirstPage=on_page, onLaterPages=on_page)
    return buf.getvalue()
