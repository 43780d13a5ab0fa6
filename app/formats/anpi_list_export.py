"""Writers for the 安否確認 list (safety-confirmation list): CSV, xlsx and PDF over plain rows.

The writers know nothing about residents, snapshots or databases: they take an `ExportTable`
(column names, rows of strings, counts for the summary) and write one file. The shelter builds
the table from SQLite (`app.services.anpi_list.export_table`), the hub (issue 8) from
PostgreSQL, and both get byte-for-byte the same file layout.

What the writers promise, whoever calls them:
- **No character is lost silently.** Every file format has characters it cannot carry: CP932
  lacks non-BMP kanji such as 𠮷, the PDF font (IPAexGothic) lacks some glyphs, and a municipal
  gaiji (private-use character, U+E000…) means nothing outside its municipality. Such a
  character is replaced by its standard form (the municipality's gaiji map for gaiji, then the
  variant fold of `matching.kanji`, then the usual CP932 Unicode mappings such as 〜→～, then
  NFKC), else by 〓; every replacement is returned as a `Replacement` (row, field, original,
  replacement) and written beside the export as `FILE.replacements.csv`.
- **Rows are written as given.** Filtering out 閲覧制限 people is the caller's job
  (`export_table` does it); `ExportTable.excluded_count` is printed in the summary of every
  format (count only, never a name).
- Files are written to a temporary name beside them and renamed (`sync.files.atomic_path`), so a crash never
  leaves half a list that looks whole.

Why these libraries: the csv module for CSV; openpyxl (write-only mode, the one maintained xlsx
writer already in our dependencies) for xlsx; reportlab platypus for PDF, with the IPAexGothic
font from `app.formats.fonts` embedded so the PDF prints on any laptop.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.formats.tables import csv_writer, new_workbook, xlsx_cell, xlsx_row
from matching.kanji import fold_variant_char
from matching.text import is_gaiji
from sync.files import atomic_path, atomic_write_bytes

GETA = "〓"  # 下駄記号: the conventional mark for "a character that could not be printed"

ENCODINGS = ("utf-8-sig", "cp932")

#: JIS-minded code points Python's cp932 codec refuses (it already maps 〜 − ‖ ¢ £ ¬ to their
#: CP932 twins): EM DASH and BROKEN BAR become the CP932 forms Excel on Windows shows.
_CP932_TWINS = {"—": "―", "¦": "￤"}
#: variation selectors and invisible format characters: they pick a glyph, not a character
_DROP = re.compile("[\u200b-\u200f\u2060\ufe00-\ufe0f\U000e0100-\U000e01ef]")
#: XML 1.0 forbids these control characters; openpyxl refuses them
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class Replacement:
    """One character that the target format could not hold, and what was written instead.

    `row` counts data rows from 1 in the table's order (in a CSV file it is the line number
    minus one); `key` is the row's value in `ExportTable.key_column` (the 宛名番号), so the
    person can be found in every format, including the per-町字 xlsx sheets.
    """

    row: int
    key: str
    field: str
    original: str
    replacement: str

    @property
    def code(self) -> str:
        return "+".join(f"U+{ord(c):04X}" for c in self.original)


@dataclass
class ExportTable:
    """Plain data for one export: everything a writer needs, nothing it must look up."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    group_column: str = "町字"  # one xlsx sheet and one PDF section per value
    key_column: str = "宛名番号"
    #: (label, value) lines printed first in every summary: snapshot, filters, created at/by
    notes: list[tuple[str, str]] = field(default_factory=list)
    status_counts: dict[str, int] = field(default_factory=dict)  # status label → people
    town_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # 町字 → status label → people
    excluded_count: int = 0  # 閲覧制限 people left out: the number only
    gaiji_map: Mapping[str, str] = field(default_factory=dict)  # private-use char (or "U+E000") → text
    sheet_columns: list[str] | None = None  # columns of CSV/xlsx (None: all)
    pdf_columns: list[tuple[str, float]] | None = None  # (column, relative width) for the PDF


@dataclass
class ExportResult:
    path: Path
    format: str
    rows: int
    replacements: list[Replacement]
    report_path: Path | None = None  # FILE.replacements.csv when anything was replaced


# --- characters ---------------------------------------------------------------------------

def _gaiji_table(gaiji_map: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in gaiji_map.items():
        if len(k) == 1:
            out[k] = v
        elif k[:2].upper() == "U+":
            try:
                out[chr(int(k[2:], 16))] = v
            except ValueError:
                continue
    return out


class CharFitter:
    """Makes text fit a target (CP932, Unicode files, or the glyphs of a font) and says what it changed.

    `fits(ch)` decides per character; results are cached per distinct cell text, because a list of
    60,000 people repeats its towns, statuses and addresses.
    """

    def __init__(self, fits: Callable[[str], bool], gaiji_map: Mapping[str, str] | None = None,
                 quick: Callable[[str], bool] | None = None) -> None:
        self._fits_char = fits
        self._quick = quick  # whole-cell fast path: True when every character surely fits
        self._gaiji = _gaiji_table(gaiji_map or {})
        self._cache: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}

    def _fits(self, ch: str) -> bool:
        return not is_gaiji(ch) and self._fits_char(ch)

    def _standard(self, ch: str) -> str:
        """The standard form of one character that does not fit, or 〓."""
        if is_gaiji(ch):
            mapped = self._gaiji.get(ch, "")
            if mapped and all(self._fits(c) for c in mapped):
                return mapped
            if mapped:
                folded = "".join(self._standard(c) if not self._fits(c) else c for c in mapped)
                if GETA not in folded:
                    return folded
            return GETA
        if _DROP.fullmatch(ch):
            return ""
        for cand in (_CP932_TWINS.get(ch, ""), fold_variant_char(ch), unicodedata.normalize("NFKC", ch)):
            if cand and cand != ch and all(self._fits(c) for c in cand):
                return cand
        return GETA

    def fit(self, text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """(text as written, ((original char, replacement), …))."""
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        if (self._quick is not None and self._quick(text)) or all(self._fits(c) for c in text):
            result: tuple[str, tuple[tuple[str, str], ...]] = (text, ())
        else:
            out: list[str] = []
            changes: list[tuple[str, str]] = []
            for ch in text:
                if self._fits(ch):
                    out.append(ch)
                else:
                    rep = self._standard(ch)
                    out.append(rep)
                    if (ch, rep) not in changes:
                        changes.append((ch, rep))
            result = ("".join(out), tuple(changes))
        self._cache[text] = result
        return result


def _has_gaiji(text: str) -> bool:
    return bool(text) and max(text) >= "\ue000" and any(is_gaiji(c) for c in text)


def _cp932_char(ch: str) -> bool:
    try:
        ch.encode("cp932")
    except UnicodeEncodeError:
        return False
    return True


def _cp932_quick(text: str) -> bool:
    try:
        text.encode("cp932")
    except UnicodeEncodeError:
        return False
    return not _has_gaiji(text)


def fitter_for(target: str, gaiji_map: Mapping[str, str] | None = None,
               glyphs: frozenset[int] | set[int] | None = None) -> CharFitter:
    """`cp932`, `unicode` (UTF-8 CSV, xlsx: only gaiji and XML-illegal controls change) or `pdf` (`glyphs`)."""
    if target == "cp932":
        return CharFitter(_cp932_char, gaiji_map, _cp932_quick)
    if target == "unicode":
        return CharFitter(lambda ch: not _ILLEGAL_XML.match(ch),
                          gaiji_map, lambda t: not _has_gaiji(t) and _ILLEGAL_XML.search(t) is None)
    if target == "pdf":
        have = glyphs or frozenset()
        return CharFitter(lambda ch: ord(ch) in have or ch in "\n", gaiji_map)
    raise ValueError(f"unknown target {target!r}")


def _fit_rows(table: ExportTable, columns: list[str], fitter: CharFitter) -> tuple[list[list[str]], list[Replacement]]:
    """The rows restricted to `columns`, every cell fitted; the replacement report."""
    index = {c: i for i, c in enumerate(table.columns)}
    pick = [index[c] for c in columns]
    key_i = index.get(table.key_column)
    out: list[list[str]] = []
    report: list[Replacement] = []
    cache = fitter._cache  # the hot loop: a million cells for 60,000 people, most of them repeats
    fit = fitter.fit
    for n, row in enumerate(table.rows, start=1):
        cells = []
        for ci in pick:
            cell = row[ci]
            hit = cache.get(cell) or fit(cell)
            cells.append(hit[0])
            if hit[1]:
                for orig, rep in hit[1]:
                    report.append(Replacement(n, row[key_i] if key_i is not None else "", table.columns[ci], orig, rep))
        out.append(cells)
    return out, report


# --- summary ------------------------------------------------------------------------------

def summary_lines(table: ExportTable) -> list[str]:
    """The summary every format carries: notes, totals, 閲覧制限 count, counts per status and per 町字."""
    lines = [table.title]
    lines += [f"{label}: {value}" for label, value in table.notes]
    lines.append(f"人数: {len(table.rows)}人")
    lines.append(f"閲覧制限により出力していない人数: {table.excluded_count}人（氏名等は出力していません）")
    lines.append("状態別: " + "、".join(f"{k} {v}人" for k, v in table.status_counts.items()))
    for town, counts in table.town_counts.items():
        lines.append(f"  {town}: " + "、".join(f"{k} {v}" for k, v in counts.items() if v) + f"（計 {sum(counts.values())}）")
    return lines


def report_path_for(out: Path) -> Path:
    """FILE.csv → FILE.replacements.csv (beside the export)."""
    return out.with_name(out.stem + ".replacements.csv")


def replacement_report_bytes(replacements: Sequence[Replacement]) -> bytes:
    """The report as UTF-8 CSV with BOM (it must hold the very characters the export could not)."""
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(["行", "宛名番号", "項目", "元の文字", "符号位置", "置換後"])
    for r in replacements:
        w.writerow([r.row, r.key, r.field, r.original, r.code, r.replacement])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _write_report(out: Path, replacements: list[Replacement]) -> Path | None:
    path = report_path_for(out)
    if not replacements:
        if path.exists():  # a report of an earlier export to the same name would now be wrong
            path.unlink()
        return None
    atomic_write_bytes(path, replacement_report_bytes(replacements))
    return path


# --- CSV ----------------------------------------------------------------------------------

def write_csv(table: ExportTable, out: Path, *, encoding: str = "utf-8-sig") -> ExportResult:
    """CSV for Excel: UTF-8 with BOM, or CP932 (Shift_JIS with NEC/IBM extensions) for older systems."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
    out = Path(out)
    columns = table.sheet_columns or table.columns
    fitter = fitter_for("cp932" if encoding == "cp932" else "unicode", table.gaiji_map)
    rows, report = _fit_rows(table, columns, fitter)
    with atomic_path(out) as tmp, tmp.open("w", encoding=encoding, newline="", errors="strict") as fh:
        w = csv_writer(fh)
        w.writerow(columns)
        w.writerows(rows)
    return ExportResult(out, "csv", len(rows), report, _write_report(out, report))


# --- xlsx ---------------------------------------------------------------------------------

_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def sheet_title(name: str, used: set[str]) -> str:
    """A valid, unique sheet name: no []:*?/\\, not quoted at the ends, at most 31 characters."""
    base = _SHEET_BAD.sub("_", name).strip().strip("'") or "（町字なし）"
    if base.lower() == "history":  # reserved by Excel
        base = base + "_"
    base = base[:31]
    title, n = base, 2
    while title.lower() in used:
        suffix = f"({n})"
        title = base[: 31 - len(suffix)] + suffix
        n += 1
    used.add(title.lower())
    return title


def display_width(text: str) -> int:
    """Columns a text takes in Excel: full-width (and ambiguous) characters count as 2."""
    return sum(2 if unicodedata.east_asian_width(c) in "FWA" else 1 for c in text)


def _col_widths(columns: list[str], rows: list[list[str]], cap: int = 60) -> list[float]:
    widths = [display_width(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) * 2 > widths[i]:  # cheap upper bound first: most cells are shorter
                w = display_width(cell)
                if w > widths[i]:
                    widths[i] = w
    return [min(w, cap) + 2 for w in widths]


def write_xlsx(table: ExportTable, out: Path) -> ExportResult:
    """A summary sheet (集計), then one sheet per 町字 with a frozen header and widths fitting Japanese text."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    out = Path(out)
    columns = table.sheet_columns or table.columns
    rows, report = _fit_rows(table, columns, fitter_for("unicode", table.gaiji_map))
    g = columns.index(table.group_column) if table.group_column in columns else None
    groups: dict[str, list[list[str]]] = {}
    for row in rows:
        groups.setdefault(row[g] if g is not None else "一覧", []).append(row)

    wb = new_workbook()
    bold = Font(bold=True)
    used: set[str] = set()

    def header(ws, values: list[str]) -> list:  # type: ignore[no-untyped-def]
        cells = []
        for v in values:
            c = xlsx_cell(ws, v)
            c.font = bold
            cells.append(c)
        return cells

    summary = wb.create_sheet(sheet_title("集計", used))
    status_labels = list(table.status_counts)
    town_header = [table.group_column, *status_labels, "計"]
    town_rows = [[town, *[counts.get(s, 0) for s in status_labels], sum(counts.values())]
                 for town, counts in table.town_counts.items()]
    text_lines = [[table.title]] + [[f"{k}: {v}"] for k, v in table.notes]
    widths = _col_widths([str(x) for x in town_header], [[str(x) for x in r] for r in town_rows], cap=40)
    widths[0] = max(widths[0], 24)
    for i, w in enumerate(widths, start=1):
        summary.column_dimensions[get_column_letter(i)].width = w
    summary.append(header(summary, [table.title]))
    for line in text_lines[1:]:
        summary.append(xlsx_row(summary, line))
    summary.append(["人数", len(rows)])
    summary.append(["閲覧制限により出力していない人数", table.excluded_count])
    summary.append([])
    summary.append(header(summary, ["状態", "人数"]))
    for label, n in table.status_counts.items():
        summary.append(xlsx_row(summary, [label, n]))
    summary.append([])
    summary.append(header(summary, town_header))
    for r in town_rows:
        summary.append(xlsx_row(summary, r))

    for town, town_rows_ in groups.items():
        ws = wb.create_sheet(sheet_title(town, used))
        ws.freeze_panes = "A2"
        for i, w in enumerate(_col_widths(columns, town_rows_), start=1):
            ws.column_dimensions[get_column_letter(i)].width = w
        ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(town_rows_) + 1}"
        ws.append(header(ws, columns))
        for row in town_rows_:
            ws.append(xlsx_row(ws, [c or None for c in row]))  # an empty cell is no cell: a third less XML
    with atomic_path(out) as tmp:
        wb.save(tmp)
    return ExportResult(out, "xlsx", len(rows), report, _write_report(out, report))


# --- PDF ----------------------------------------------------------------------------------

def _wrap(text: str, width: float, font: str, size: float, max_lines: int = 3) -> str:
    """Break `text` into lines no wider than `width` points (Japanese has no spaces to break at)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    if len(text) * size <= width or stringWidth(text, font, size) <= width:  # no glyph is wider than 1 em
        return text
    lines: list[str] = []
    cur = ""
    for ch in text:
        if cur and stringWidth(cur + ch, font, size) > width:
            lines.append(cur)
            cur = ch
            if len(lines) == max_lines:
                break
        else:
            cur += ch
    else:
        lines.append(cur)
        return "\n".join(lines)
    lines[-1] = lines[-1][:-1] + "…"
    return "\n".join(lines)


def font_glyphs(font_name: str) -> frozenset[int]:
    """Code points the registered TrueType font can draw."""
    from reportlab.pdfbase import pdfmetrics

    face = pdfmetrics.getFont(font_name).face
    return frozenset(face.charToGlyph)


def write_pdf(table: ExportTable, out: Path, *, rows_per_table: int = 40) -> ExportResult:
    """A4 landscape, Japanese font embedded: a summary page, then a table per 町字 (each on new pages),
    the list title and page number "n / N" on every page."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas as rl_canvas
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from app.formats.fonts import register_japanese_font

    out = Path(out)
    font = register_japanese_font()
    spec = table.pdf_columns or [(c, 1.0) for c in table.columns]
    columns = [c for c, _ in spec]
    group_col = table.group_column
    fit_cols = columns + ([group_col] if group_col in table.columns and group_col not in columns else [])
    rows, report = _fit_rows(table, fit_cols, fitter_for("pdf", table.gaiji_map, font_glyphs(font)))
    g = fit_cols.index(group_col) if group_col in fit_cols else None
    fitter = fitter_for("pdf", table.gaiji_map, font_glyphs(font))

    def fitted(text: str) -> str:
        return fitter.fit(text)[0]

    page_w, page_h = landscape(A4)
    margin = 10 * mm
    usable = page_w - 2 * margin
    total_weight = sum(w for _, w in spec)
    col_w = [usable * w / total_weight for _, w in spec]
    size = 7.5
    title = fitted(table.title)
    subtitle = fitted("  ".join(f"{k}: {v}" for k, v in table.notes[:2]))

    class NumberedCanvas(rl_canvas.Canvas):
        """Draws "n / N" once the page count is known (pages are kept until save)."""

        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            self._saved: list[dict] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab API
            self._saved.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._saved)
            for state in self._saved:
                self.__dict__.update(state)
                self.setFont(font, 8)
                self.drawRightString(page_w - margin, 6 * mm, f"{self._pageNumber} / {total}")
                super().showPage()
            super().save()

    def on_page(c, _doc) -> None:  # type: ignore[no-untyped-def]
        c.saveState()
        c.setFont(font, 9)
        c.drawString(margin, page_h - 7 * mm, title)
        c.setFont(font, 7)
        c.drawRightString(page_w - margin, page_h - 7 * mm, subtitle)
        c.setStrokeColor(colors.grey)
        c.line(margin, page_h - 8.5 * mm, page_w - margin, page_h - 8.5 * mm)
        c.restoreState()

    h1 = ParagraphStyle("h1", fontName=font, fontSize=13, leading=17, spaceAfter=4)
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=12)
    style = TableStyle([
        ("FONT", (0, 0), (-1, -1), font, size),
        ("LEADING", (0, 0), (-1, -1), size + 1.5),
        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.88, 0.9, 0.94)),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2),
    ])

    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    story: list = [Paragraph(esc(title), h1)]
    for line in summary_lines(table)[1:]:
        story.append(Paragraph(esc(fitted(line)), body))
    groups: dict[str, list[list[str]]] = {}
    for row in rows:
        groups.setdefault(row[g] if g is not None else "一覧", []).append(row[: len(columns)])
    header = [_wrap(c, w - 4, font, size) for c, w in zip(columns, col_w)]
    for town, town_rows in groups.items():
        story.append(PageBreak())
        story.append(Paragraph(esc(f"{group_col}: {town}（{len(town_rows)}人）"), h1))
        for start in range(0, len(town_rows), rows_per_table):
            chunk = [[_wrap(cell, w - 4, font, size) for cell, w in zip(r, col_w)]
                     for r in town_rows[start:start + rows_per_table]]
            t = Table([header, *chunk], colWidths=col_w, repeatRows=1)
            t.setStyle(style)
            story.append(t)
            story.append(Spacer(1, 2 * mm))
    if not groups:
        story.append(Spacer(1, 4 * mm))
        story.append(Paragraph("該当する人はいません。", body))

    with atomic_path(out) as tmp:
        doc = SimpleDocTemplate(str(tmp), pagesize=landscape(A4), leftMargin=margin, rightMargin=margin,
                                topMargin=12 * mm, bottomMargin=10 * mm, title=table.title, author="Anpi")
        doc.build(story, onFirstPage=on_page, onLaterPages=on_page, canvasmaker=NumberedCanvas)
    return ExportResult(out, "pdf", len(rows), report, _write_report(out, report))
