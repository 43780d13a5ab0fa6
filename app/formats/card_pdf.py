"""避難者カード as PDF: an A6 sheet or a 62 mm label-printer roll, one page per card.

Why draw the QR code's modules as rectangles (segno's matrix) instead of embedding a PNG: vector
modules stay sharp on any printer, need no Pillow, and keep the file tiny. The quiet zone is the
four modules the QR standard asks for. Names are drawn in IPAexGothic (embedded, see
app.formats.fonts) and shrunk to fit the width, so a long name never runs off a label; a
character the font lacks prints in its standard form or as 〓 (app.formats.certificate_pdf.printable).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from app.formats.certificate_pdf import printable
from app.formats.fonts import register_japanese_font

#: page sizes in mm (width, height): A6 portrait; a 62 mm continuous roll cut at 100 mm
PAGE_MM = {"a6": (105.0, 148.0), "label62": (62.0, 100.0)}


@dataclass(frozen=True)
class CardFace:
    """What one card shows (decided by app.services.cards under the 閲覧制限 rule)."""

    name: str
    name_kana: str
    shelter_name: str  # empty on a blind card
    number: str
    qr_text: str
    sex: str = ""


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR code's modules (True = dark), error correction M, without the quiet zone."""
    import segno

    return [[bool(v) for v in row] for row in segno.make(text, error="m", micro=False).matrix]


def _draw_qr(c: Any, text: str, x: float, y: float, size: float) -> None:
    """The code in a `size` square whose lower left corner is (x, y), quiet zone included."""
    rows = qr_matrix(text)
    n = len(rows) + 8
    m = size / n
    c.setFillColorRGB(0, 0, 0)
    for r, row in enumerate(rows):
        run = None
        for col, dark in enumerate([*row, False]):
            if dark and run is None:
                run = col
            elif not dark and run is not None:
                c.rect(x + (4 + run) * m, y + size - (4 + r + 1) * m, (col - run) * m, m, stroke=0, fill=1)
                run = None


def _fit(c: Any, font: str, text: str, size: float, width: float) -> float:
    """The largest font size ≤ `size` at which `text` fits `width`."""
    w = c.stringWidth(text, font, size)
    return size if w <= width else max(6.0, size * width / w)


def _card(c: Any, face: CardFace, w: float, h: float, mm: float, font: str) -> None:
    margin = 5 * mm
    inner = w - 2 * margin
    top = h - margin
    c.setFont(font, 9 if w < 80 * mm else 11)
    c.drawString(margin, top - 9, printable("避難者カード"))
    if face.shelter_name:
        c.drawRightString(w - margin, top - 9, printable(face.shelter_name))
    kana = printable(face.name_kana)
    name = printable(face.name)
    y = top - 9 - 6 * mm
    if kana and kana != name:
        ks = _fit(c, font, kana, 10, inner)
        c.setFont(font, ks)
        c.drawString(margin, y, kana)
        y -= ks + 2
    ns = _fit(c, font, name, 30 if w > 80 * mm else 22, inner)
    c.setFont(font, ns)
    y -= ns
    c.drawString(margin, y, name)
    y -= 4 * mm
    c.setFont(font, 9)
    label = f"登録番号 {face.number}" + (f"　{face.sex}" if face.sex else "")
    c.drawString(margin, y - 9, printable(label)[:60])
    qr_size = min(inner, y - 9 - 2 * mm - (margin + 4 * mm))
    _draw_qr(c, face.qr_text, (w - qr_size) / 2, margin + 4 * mm, qr_size)
    c.setFont(font, 7)
    c.drawCentredString(w / 2, margin, printable("別の避難所でもこのカードを受付に見せてください"))


def render_cards_pdf(faces: list[CardFace], *, size: str = "a6") -> bytes:
    """The cards as PDF bytes, one page each."""
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas

    font = register_japanese_font()
    w, h = (v * mm for v in PAGE_MM[size])
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(w, h))
    c.setTitle("避難者カード")
    c.setAuthor("Anpi")
    for face in faces:
        _card(c, face, w, h, mm, font)
        c.showPage()
    c.save()
    return buf.getvalue()
