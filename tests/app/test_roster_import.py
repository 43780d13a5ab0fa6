"""Roster import: CSV/xlsx, header aliases, rejects report, raw text kept, status JSON."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest

from tests.conftest import Cli, write_csv
from app.db_crypto import connect as db_connect

HEADER = ["受付番号", "氏名", "ふりがな", "生年月日", "性別", "住所", "電話番号"]
ROWS = [
    ["A-001", "髙橋 一郎", "たかはし いちろう", "S45.3.1", "男", "高田町字館の沖12-3", "090-1111-2222"],
    ["A-002", "タカハシ キョウコ", "", "昭和47年11月3日", "女", "", ""],
    ["A-003", "Sho TAKAHASHI", "", "2005/4/5", "M", "", ""],
    ["A-004", "", "ﾔﾏｻﾞｷ ﾊﾅ", "78歳", "", "", ""],
    ["A-005", "佐藤花子", "", "1970年", "F", "", ""],
    ["A-006", "鈴木 一", "", "昭和99年13月1日", "男", "", ""],  # unreadable date -> registered, flagged
    ["A-007", "", "", "S45.3.1", "男", "", ""],  # neither name nor kana -> the only reject
    ["A-001", "重複 太郎", "", "", "", "", ""],  # repeated id, another person -> registered, flagged
    ["A-009", "田中 実", "", "45.3.1", "x", "", ""],  # unknown sex -> registered, flagged
    ["A-010", "田中 みのり", "", "", "", "", ""],
]


def test_csv_roster_keeps_every_named_row_and_flags_what_it_cannot_read(tmp_path: Path, cli: Cli) -> None:
    f = write_csv(tmp_path / "meibo.csv", [HEADER, *ROWS], "cp932")
    code, out, err = cli("roster", "import", f)
    assert code == 0, err
    assert "9 evacuees registered" in out
    assert "1 rows rejected (no name)" in err and "3 rows flagged" in err
    report = tmp_path / "meibo.rejects.csv"
    with report.open(encoding="utf-8-sig") as fh:
        rejects = list(csv.DictReader(fh))
    by_line = {int(r["行"]): r for r in rejects}
    assert set(by_line) == {7, 8, 9, 10}
    assert by_line[7]["項目"] == "生年月日" and "13月はありません" in by_line[7]["理由"]
    assert by_line[7]["入力値"] == "昭和99年13月1日" and by_line[7]["扱い"] == "登録済み・要確認"
    assert by_line[8]["項目"] == "氏名" and by_line[8]["扱い"].startswith("登録しない")
    assert by_line[9]["項目"] == "受付番号" and "2行目" in by_line[9]["理由"]
    assert by_line[10]["項目"] == "性別" and by_line[10]["入力値"] == "x"
    con = db_connect(cli.db)
    row = con.execute("SELECT name_raw, name_kana_raw, name_kana, birth_raw, birth_date, sex, status FROM evacuee "
                      "WHERE external_key='A-001' AND roster_line = 2").fetchone()
    assert row == ("髙橋 一郎", "たかはし いちろう", "タカハシ イチロウ", "S45.3.1", "1970-03-01", "M", "in_shelter")
    kinds = dict(con.execute("SELECT external_key, birth_kind FROM evacuee WHERE external_key != 'A-001'").fetchall())
    assert kinds["A-004"] == "age" and kinds["A-005"] == "year" and kinds["A-010"] == "empty"
    assert kinds["A-006"] == "unknown"
    kept = con.execute("SELECT birth_raw, birth_date, sex_raw, sex FROM evacuee WHERE external_key IN ('A-006', 'A-009') "
                       "ORDER BY external_key").fetchall()
    assert kept == [("昭和99年13月1日", None, "男", "M"), ("45.3.1", "1970-03-01", "x", "")]
    flags = con.execute("SELECT f.line, f.field, f.value, f.kind, f.status, e.external_key FROM rosterflag f "
                        "LEFT JOIN evacuee e ON e.id = f.evacuee_id ORDER BY f.line").fetchall()
    assert flags == [(7, "生年月日", "昭和99年13月1日", "flag", "open", "A-006"), (8, "氏名", "", "rejected", "resolved", None),
                     (9, "受付番号", "A-001", "flag", "open", "A-001"), (10, "性別", "x", "flag", "open", "A-009")]
    assert con.execute("SELECT COUNT(*) FROM stayevent WHERE kind='check_in'").fetchone()[0] == 9
    st = cli.json("status", "--json")
    assert st["evacuees"] == {"total": 9, "in_shelter": 9, "left": 0}
    assert st["flags"] == {"open": 3, "evacuees": 3}
    assert st["snapshot"] is None and st["last_sync"] is None
    assert st["decisions"] == {"auto": 0, "review": 0, "none": 0, "confirmed": 0}
    # the same file again is detected and changes nothing
    code, _out, err = cli("roster", "import", f)
    assert code == 0 and "already imported" in err
    assert con.execute("SELECT COUNT(*) FROM evacuee").fetchone()[0] == 9


def test_xlsx_roster_with_english_headers_and_aliases(tmp_path: Path, cli: Cli) -> None:
    import datetime as dt

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["番号", "名前", "カナ", "birth_date", "sex", "連絡先"])
    ws.append([1, "山田 太郎", "ヤマダ タロウ", dt.datetime(1970, 3, 1), "M", "090"])
    ws.append([2, "山田 花子", "ヤマダ ハナコ", "S47.1.2", "F", None])
    f = tmp_path / "meibo.xlsx"
    wb.save(f)
    code, out, err = cli("roster", "import", f)
    assert code == 0, err
    assert "2 evacuees registered" in out
    con = db_connect(cli.db)
    rows = con.execute("SELECT external_key, birth_raw, birth_date, phone_raw FROM evacuee ORDER BY external_key").fetchall()
    assert rows == [("1", "1970-03-01", "1970-03-01", "090"), ("2", "S47.1.2", "1972-01-02", "")]


def test_unreadable_roster_file_is_refused(tmp_path: Path, cli: Cli) -> None:
    f = tmp_path / "broken.xlsx"
    f.write_bytes(b"not a zip")
    code, _out, err = cli("roster", "import", f)
    assert code == 1 and "broken.xlsx" in err
    f2 = write_csv(tmp_path / "noname.csv", [["番号", "住所"], ["1", "高田町"]])
    code, _out, err = cli("roster", "import", f2)
    assert code == 1 and "noname.csv:1" in err


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_roster_encodings(tmp_path: Path, cli: Cli, encoding: str) -> None:
    f = write_csv(tmp_path / "r.csv", [HEADER, ROWS[0]], encoding)
    code, _out, err = cli("roster", "import", f)
    assert code == 0, err
    con = db_connect(cli.db)
    assert con.execute("SELECT name_raw FROM evacuee").fetchone()[0] == "髙橋 一郎"


def test_same_as_above_address_means_same_household(tmp_path: Path, cli: Cli) -> None:
    rows = [HEADER,
            ["B-1", "佐藤 一", "", "S30.1.1", "男", "高田町字大町3-1", ""],
            ["B-2", "佐藤 花", "", "S33.2.2", "女", "同上", ""],
            ["B-3", "佐藤 次郎", "", "H2.3.3", "男", "〃", ""],
            ["B-4", "鈴木 実", "", "S40.4.4", "男", "米崎町1", ""]]
    f = write_csv(tmp_path / "family.csv", rows)
    assert cli("roster", "import", f)[0] == 0
    con = db_connect(cli.db)
    got = dict((k, (a, raw, h)) for k, a, raw, h in con.execute(
        "SELECT external_key, address, address_raw, household_key FROM evacuee"))
    assert got["B-2"][:2] == ("高田町字大町3-1", "同上")  # what was meant, and what was typed
    assert got["B-3"][0] == "高田町字大町3-1"
    assert got["B-1"][2] and got["B-1"][2] == got["B-2"][2] == got["B-3"][2]
    assert got["B-4"][2] == ""
