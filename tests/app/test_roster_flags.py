"""Roster import: nothing typed is dropped (issue 14 item 12), 受付番号 collisions between desks
(issue 18), chunked and resumable imports (issue 18 item 3). Real SQLite files, the real CLI."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest

from app.db import open_shelter_db
from app.services import roster
from app.services.roster import ImportStopped, import_roster
from app.services.roster_checks import parse_consent
from tests.conftest import Cli, write_csv
from app.db_crypto import connect as db_connect

HEADER = ["受付番号", "氏名", "ふりがな", "生年月日", "性別", "住所", "同意_親族", "同意_知人", "同意_公表"]


def rows_of(con: sqlite3.Connection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_unreadable_cells_are_kept_as_typed_flagged_and_counted(tmp_path: Path, cli: Cli) -> None:
    f = write_csv(tmp_path / "meibo.csv", [
        HEADER,
        ["1", "岩手 一郎", "", "-1歳", "男", "", "同意", "不同意", "○"],
        ["2", "岩手 花子", "", "S45.13.1", "おとこ?", "", "はい", "いいえ", "×"],
        ["3", "", "いわて じろう", "13月", "", "", "1", "0", "たぶん"],
        ["4", "", "", "S45.3.1", "男", "", "", "", ""],
        ["5", "Taro IWATE", "", "R10.1.1", "M", "", "", "", ""],
    ])
    code, out, err = cli("roster", "import", f)
    assert code == 0, err
    assert "4 evacuees registered from meibo.csv (5 rows)" in out
    con = db_connect(cli.db)
    got = rows_of(con, "SELECT external_key, birth_raw, birth_date, birth_kind, sex_raw, sex, consent_relatives, "
                       "consent_acquaintances, consent_public FROM evacuee ORDER BY external_key")
    assert got == [("1", "-1歳", None, "unknown", "男", "M", 1, 0, 1),
                   ("2", "S45.13.1", None, "unknown", "おとこ?", "", 1, 0, 0),
                   ("3", "13月", None, "unknown", "", "", 1, 0, None),
                   ("5", "R10.1.1", None, "unknown", "M", "M", None, None, None)]  # 令和10年: in the future
    flags = rows_of(con, "SELECT line, field, value, reason_ja FROM rosterflag WHERE kind = 'flag' ORDER BY line, field")
    assert [(line, fld, value) for line, fld, value, _ in flags] == [
        (2, "生年月日", "-1歳"), (3, "性別", "おとこ?"), (3, "生年月日", "S45.13.1"),
        (4, "同意_公表", "たぶん"), (4, "生年月日", "13月"), (6, "生年月日", "R10.1.1")]
    reasons = {(line, fld): ja for line, fld, _, ja in flags}
    assert "13月はありません" in reasons[(3, "生年月日")]
    assert "未来" in reasons[(6, "生年月日")]
    assert "⑭公表" in reasons[(4, "同意_公表")] and "未確認" in reasons[(4, "同意_公表")]
    assert rows_of(con, "SELECT line, kind FROM rosterflag WHERE kind != 'flag'") == [(5, "rejected")]
    st = cli.json("status", "--json")
    assert st["flags"] == {"open": 6, "evacuees": 4}
    assert st["evacuees"]["total"] == 4
    code, out, _ = cli("status")
    assert "6 unreadable cells of 4 evacuees" in out


@pytest.mark.parametrize(("typed", "expected"), [
    ("同意", (True, True)), ("不同意", (False, True)), ("はい", (True, True)), ("いいえ", (False, True)),
    ("1", (True, True)), ("0", (False, True)), ("○", (True, True)), ("×", (False, True)), ("１", (True, True)),
    ("", (None, True)), ("たぶん", (None, False)), ("2", (None, False)),
])
def test_consent_values(typed: str, expected: tuple) -> None:
    assert parse_consent(typed) == expected


def make_desk_roster(path: Path, desk: str, people: list[tuple[str, str]]) -> Path:
    """A desk numbers its rows A-0001-1 … whatever the other desks do."""
    return write_csv(path, [["受付番号", "氏名", "生年月日", "性別"],
                            *[[f"A-{i // 3 + 1:04d}-{i % 3 + 1}", name, birth, "男"] for i, (name, birth) in enumerate(people)]])


def test_reception_numbers_reused_by_another_desk_are_different_people(tmp_path: Path, cli: Cli) -> None:
    surnames = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
    given = ["一郎", "二郎", "三郎", "花子", "京子", "実", "誠", "茂", "清", "勇"]
    people = [(f"{s} {g}", f"19{50 + i % 40}-0{1 + i % 9}-1{i % 10}") for i, (s, g) in
              enumerate((s, g) for s in surnames for g in given)]
    desk_a = make_desk_roster(tmp_path / "desk-a.csv", "A", people[:60])
    desk_b = make_desk_roster(tmp_path / "desk-b.csv", "B", people[60:])  # the same numbers, other people
    assert cli("roster", "import", desk_a)[0] == 0
    code, out, err = cli("roster", "import", desk_b)
    assert code == 0, err
    assert "40 evacuees registered" in out and "already registered" not in err
    con = db_connect(cli.db)
    assert rows_of(con, "SELECT COUNT(*), COUNT(DISTINCT external_key) FROM evacuee") == [(100, 60)]
    # desk B sends an updated roster: its 40 rows again (one name now typed without the space),
    # plus two new people; only the new ones are registered
    updated = people[60:] + [("岩手 新", "1990-01-01"), ("宮城 新", "1991-02-02")]
    assert updated[0][0] == "山本 一郎"
    updated[0] = ("山本一郎", updated[0][1])
    desk_b2 = make_desk_roster(tmp_path / "desk-b-v2.csv", "B", updated)
    code, out, err = cli("roster", "import", desk_b2, "--source", "desk-b")
    assert code == 0, err
    assert "2 evacuees registered" in out and "40 rows already registered" in err
    # the same person typed at another desk under another number: found by person, not number
    other = write_csv(tmp_path / "desk-c.csv", [["番号", "名前", "フリガナ", "生年月日"],
                                                ["C-1", "髙橋 一郎", "", people[20][1]],  # 高橋 一郎 of desk A, old form
                                                ["C-2", "たかはし じろう", "", "1999-09-09"]])
    code, out, err = cli("roster", "import", other)
    assert code == 0, err
    assert "1 evacuees registered" in out and "1 rows already registered" in err
    assert rows_of(con, "SELECT COUNT(*) FROM evacuee") == [(103,)]
    # re-importing the same file changes nothing
    code, _out, err = cli("roster", "import", desk_b)
    assert code == 0 and "already imported" in err
    assert rows_of(con, "SELECT COUNT(*) FROM evacuee") == [(103,)]


def test_same_number_twice_in_one_file_for_two_people_keeps_both(tmp_path: Path, cli: Cli) -> None:
    f = write_csv(tmp_path / "r.csv", [["受付番号", "氏名", "生年月日"], ["7", "山田 太郎", "S40.1.1"],
                                       ["7", "山田 次郎", "S42.2.2"], ["8", "山田 太郎", "昭和40年1月1日"]])
    code, out, err = cli("roster", "import", f)
    assert code == 0, err
    assert "2 evacuees registered" in out and "1 rows already registered" in err and "1 rows flagged" in err
    with (tmp_path / "r.rejects.csv").open(encoding="utf-8-sig") as fh:
        report = {int(r["行"]): r for r in csv.DictReader(fh)}
    assert "3行目" not in report[3]["理由"] and "2行目と重複" in report[3]["理由"]
    assert report[4]["扱い"] == "登録済みの人"


def big_roster(path: Path, n: int) -> Path:
    return write_csv(path, [["受付番号", "氏名", "ふりがな", "生年月日"],
                            *[[f"R-{i}", f"避難 {i}郎", "ひなん", f"19{40 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}"]
                              for i in range(n)]])


def test_import_in_chunks_stops_cleanly_and_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure part-way (here the database refuses one row) keeps the chunks before it, says
    where it stopped, and importing the same file again continues without doubling anyone."""
    monkeypatch.setattr(roster, "CHUNK_ROWS", 25)
    monkeypatch.setattr(roster, "CHUNK_SECONDS", 60)  # chunks by rows only, whatever the machine
    monkeypatch.setattr(roster, "PAUSE_SECONDS", 0)
    db = tmp_path / "shelter.db"
    engine = open_shelter_db(db)
    f = big_roster(tmp_path / "big.csv", 200)
    con = db_connect(db)
    con.execute("CREATE TRIGGER stop_at BEFORE INSERT ON evacuee WHEN NEW.external_key = 'R-130' "
                "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    con.commit()
    with pytest.raises(ImportStopped) as stopped:
        import_roster(engine, f)
    assert stopped.value.done == 125 and stopped.value.line == 127
    assert "127行目で中断" in stopped.value.message_ja and "line 127" in str(stopped.value)
    assert rows_of(con, "SELECT COUNT(*) FROM evacuee") == [(125,)]
    assert rows_of(con, "SELECT status, done_rows, accepted FROM rosterimport") == [("running", 125, 125)]
    assert cli_status(db)["roster_imports_unfinished"] == 1
    con.execute("DROP TRIGGER stop_at")
    con.commit()
    result = import_roster(engine, f)
    assert result.resumed_at == 125 and result.accepted == 200 and result.rows == 200
    assert rows_of(con, "SELECT COUNT(*), COUNT(DISTINCT external_key) FROM evacuee") == [(200, 200)]
    assert rows_of(con, "SELECT status, done_rows, accepted FROM rosterimport") == [("done", 200, 200)]
    assert rows_of(con, "SELECT COUNT(*) FROM stayevent") == [(200,)]
    engine.dispose()


def cli_status(db: Path) -> dict:
    out = Cli(db).json("status", "--json")
    assert isinstance(out, dict)
    return out


def test_cli_says_where_an_import_stopped(tmp_path: Path, cli: Cli) -> None:
    f = big_roster(tmp_path / "big.csv", 30)
    cli("status")  # creates the database
    con = db_connect(cli.db)
    con.execute("CREATE TRIGGER stop_at BEFORE INSERT ON evacuee WHEN NEW.external_key = 'R-0' "
                "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    con.commit()
    code, _out, err = cli("roster", "import", f)
    assert code == 1 and "big.csv: stopped at line 2 after 0 of 30 rows" in err and "again to continue" in err


def test_fixture_rosters_keep_every_named_row(tmp_path: Path, cli: Cli) -> None:
    from fixtures.generate import make_dataset

    for fmt in ("csv", "xlsx"):
        ds = make_dataset(tmp_path / fmt, residents=1500, evacuees=250, seed=11, bad_rows=6, roster_format=fmt,
                          roster_encoding="cp932")
        db = tmp_path / f"{fmt}.db"
        code, out, err = Cli(db)("roster", "import", ds.roster_path)
        assert code == 0, err
        with Path(ds.truth_path).open(encoding="utf-8") as fh:
            truth = list(csv.DictReader(fh))
        no_name = sum(1 for t in truth if t.get("noise", "").endswith("bad=no-name") or "bad=no-name" in str(t))
        assert no_name == 3
        con = db_connect(db)
        registered = rows_of(con, "SELECT COUNT(*) FROM evacuee")[0][0]
        duplicates = rows_of(con, "SELECT COUNT(*) FROM rosterflag WHERE kind = 'duplicate'")[0][0]
        assert registered + duplicates == len(truth) - no_name, (fmt, err)
        assert rows_of(con, "SELECT COUNT(*) FROM evacuee WHERE name_raw = '山田　太郎' AND birth_kind = 'unknown'") == [(3,)]
