"""`anpi reconcile` and `anpi match` end to end, and the finality of staff decisions."""

from __future__ import annotations

import csv
from pathlib import Path

from app.db import open_shelter_db, session
from app.services.reconcile import staff_decide
from tests.app.test_registry_import import HEADER_JA, ROWS
from tests.conftest import Cli, write_csv
from app.db_crypto import connect as db_connect

ROSTER = [
    ["受付番号", "氏名", "ふりがな", "生年月日", "性別", "住所"],
    ["1", "高橋 一郎", "たかはし いちろう", "S45.3.1", "男", "高田町字館の沖12-3"],
    ["2", "タカハシ キョウコ", "", "昭和47年11月3日", "女", "同上"],
    ["3", "山崎 花", "ヤマザキ ハナ", "1999-12-31", "女", ""],
    ["4", "見知らぬ 人", "ミシラヌ ヒト", "1988-08-08", "男", "東京都"],
]


def setup(tmp_path: Path, cli: Cli) -> None:
    assert cli("registry", "import", write_csv(tmp_path / "juki.csv", [HEADER_JA, *ROWS]), "--as-of", "2026-10-31")[0] == 0
    assert cli("roster", "import", write_csv(tmp_path / "meibo.csv", ROSTER))[0] == 0


def read_out(path: Path) -> dict[str, dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM (ARCHITECTURE.md §5)
    with path.open(encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["evacuee_id", "resident_id", "score", "decision", "reasons"]
        return {r["evacuee_id"]: r for r in reader}


def test_reconcile_writes_design_csv(tmp_path: Path, cli: Cli) -> None:
    setup(tmp_path, cli)
    code, out, err = cli("reconcile", "--out", tmp_path / "out.csv")
    assert code == 0, err
    rows = read_out(tmp_path / "out.csv")
    assert rows["1"]["resident_id"] == "1001" and rows["1"]["decision"] == "auto"
    assert "birth=exact" in rows["1"]["reasons"]
    assert rows["2"]["resident_id"] == "1002"
    assert rows["4"]["decision"] == "none" and rows["4"]["resident_id"] == ""
    st = cli.json("status", "--json")
    assert sum(st["decisions"].values()) == 4
    # re-running writes no new decision rows where nothing changed
    con = db_connect(cli.db)
    before = con.execute("SELECT COUNT(*) FROM matchdecision").fetchone()[0]
    assert cli("reconcile")[0] == 0
    assert con.execute("SELECT COUNT(*) FROM matchdecision").fetchone()[0] == before


def _evacuee_id(db: Path, key: str) -> str:
    return db_connect(db).execute("SELECT id FROM evacuee WHERE external_key = ?", (key,)).fetchone()[0]


def test_staff_decisions_are_final_and_survive_a_new_snapshot(tmp_path: Path, cli: Cli) -> None:
    setup(tmp_path, cli)
    cli("reconcile")
    engine = open_shelter_db(cli.db)
    with session(engine) as s:
        # staff say evacuee 1 is not 1001 and link evacuee 3 by hand
        staff_decide(s, _evacuee_id(cli.db, "1"), "rejected", "1001", by="tester")
        staff_decide(s, _evacuee_id(cli.db, "3"), "confirmed", "1004", by="tester")
        s.commit()
    engine.dispose()
    cli("reconcile", "--out", tmp_path / "out.csv")
    rows = read_out(tmp_path / "out.csv")
    assert rows["1"]["resident_id"] != "1001"  # a rejected candidate is never proposed again
    assert rows["3"]["decision"] == "confirmed" and rows["3"]["resident_id"] == "1004"
    # a new snapshot (same people, one more row): the confirmed link stays through 宛名番号
    new_rows = [*ROWS, ["1007", "H9", "新井", "一", "アライ", "ハジメ", "", "S60.1.1", "1", "世帯主", "", "高田町", ""]]
    assert cli("registry", "import", write_csv(tmp_path / "juki2.csv", [HEADER_JA, *new_rows]), "--as-of", "2026-11-30")[0] == 0
    cli("reconcile", "--out", tmp_path / "out2.csv")
    rows2 = read_out(tmp_path / "out2.csv")
    assert rows2["3"]["decision"] == "confirmed" and rows2["3"]["resident_id"] == "1004"
    assert rows2["1"]["resident_id"] != "1001"


def test_match_json(tmp_path: Path, cli: Cli) -> None:
    setup(tmp_path, cli)
    data = cli.json("match", "--name", "髙橋一郎", "--birth", "1970-03-01", "--sex", "M", "--json")
    assert data["decision"] == "auto" and data["resident_id"] == "1001"
    top = data["candidates"][0]
    assert top["name"] == "髙橋 一郎" and top["reasons"]
    # 閲覧制限: the address of a restricted resident is not shown in a plain search
    data = cli.json("match", "--kana", "ヤマザキ ハナ", "--json")
    hana = next(c for c in data["candidates"] if c["resident_id"] == "1004")
    assert hana["restricted"] and "米崎" not in hana["address"]


def test_match_without_snapshot_fails_cleanly(cli: Cli) -> None:
    code, _out, err = cli("match", "--name", "山田")
    assert code == 1 and "no registry snapshot" in err
    code, _out, err = cli("match")
    assert code == 1 and "--name" in err


def test_reconcile_without_snapshot_fails_cleanly(tmp_path: Path, cli: Cli) -> None:
    code, _out, err = cli("reconcile")
    assert code == 1 and "registry" in err
