"""Registry snapshot import: encodings, profiles, gaiji, dates, all-or-nothing refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import Cli, write_csv
from app.db_crypto import connect as db_connect

HEADER_JA = ["宛名番号", "世帯番号", "氏", "名", "氏カナ", "名カナ", "英字氏名", "生年月日", "性別", "続柄", "郵便番号", "住所", "閲覧制限"]
HEADER_EN = ["resident_id", "household_id", "family_name", "given_name", "family_name_kana", "given_name_kana",
             "alpha_name", "birth_date", "sex", "relationship", "postal_code", "address", "restricted"]
ROWS = [
    ["1001", "H1", "髙橋", "一郎", "タカハシ", "イチロウ", "", "S45.3.1", "1", "世帯主", "029-2205", "岩手県陸前高田市高田町字館の沖12-3", ""],
    ["1002", "H1", "髙橋", "京子", "タカハシ", "キヨウコ", "", "昭和47年11月3日", "2", "妻", "029-2205", "岩手県陸前高田市高田町字館の沖12-3", ""],
    ["1003", "H1", "髙橋", "翔", "タカハシ", "シヨウ", "", "20050405", "男", "子", "029-2205", "岩手県陸前高田市高田町字館の沖12-3", ""],
    ["1004", "H2", "山﨑", "花", "ヤマザキ", "ハナ", "", "1999-12-31", "女", "世帯主", "", "岩手県陸前高田市米崎町2-1", "1"],
    ["1005", "H3", "グエン", "ヴァン アン", "グエン", "ヴァンアン", "NGUYEN VAN AN", "1990/1/2", "M", "世帯主", "", "高田町1", ""],
    ["1006", "H4", "渡邉", "稔", "ワタナベ", "ミノル", "", "不詳", "F", "世帯主", "", "高田町2", ""],
]


def snapshot_count(db: Path) -> tuple[int, int]:
    con = db_connect(db)
    try:
        return (con.execute("SELECT COUNT(*) FROM registrysnapshot").fetchone()[0],
                con.execute("SELECT COUNT(*) FROM resident").fetchone()[0])
    finally:
        con.close()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932", "euc-jp"])
def test_each_encoding_imports_with_auto_or_named(tmp_path: Path, cli: Cli, encoding: str) -> None:
    rows = [HEADER_JA, *ROWS]
    if encoding == "euc-jp":  # EUC-JP (JIS X 0208) has no 髙 or 﨑: such registries carry the everyday form
        rows = [[c.replace("髙", "高").replace("﨑", "崎") for c in r] for r in rows]
    f = write_csv(tmp_path / "juki.csv", rows, encoding)
    # EUC-JP cannot be sniffed reliably against CP932, so it is named explicitly (ARCHITECTURE.md §3).
    args = ["--encoding", "euc-jp"] if encoding == "euc-jp" else []
    code, out, err = cli("registry", "import", f, *args, "--as-of", "2026-10-31")
    assert code == 0, err
    assert "snapshot 1: 6 residents" in out
    con = db_connect(cli.db)
    names = con.execute("SELECT family_name, given_name_kana, birth_date, sex FROM resident ORDER BY resident_id").fetchall()
    old = encoding != "euc-jp"
    assert names[0] == ("髙橋" if old else "高橋", "イチロウ", "1970-03-01", "M")
    assert names[1][2] == "1972-11-03"
    assert names[3][0] == ("山﨑" if old else "山崎")  # old form kept as registered
    assert names[5][2] is None  # 不詳 stays unknown, never invented


def test_english_headers(tmp_path: Path, cli: Cli) -> None:
    f = write_csv(tmp_path / "en.csv", [HEADER_EN, *ROWS])
    code, _out, err = cli("registry", "import", f)
    assert code == 0, err
    rows = cli.json("registry", "list", "--json")
    assert rows[0]["rows"] == 6 and rows[0]["profile"] == "anpi"
    assert rows[0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_restricted_flag_and_alpha_name_kept(tmp_path: Path, cli: Cli) -> None:
    cli("registry", "import", write_csv(tmp_path / "a.csv", [HEADER_JA, *ROWS]))
    con = db_connect(cli.db)
    assert con.execute("SELECT restricted FROM resident WHERE resident_id='1004'").fetchone()[0] == 1
    assert con.execute("SELECT alpha_name FROM resident WHERE resident_id='1005'").fetchone()[0] == "NGUYEN VAN AN"


KIHON_HEADER = ["宛名番号", "世帯番号", "氏名", "氏名_フリガナ", "氏名_外国人ローマ字", "通称", "旧氏", "性別", "生年月日",
                "生年月日_不詳フラグ", "続柄表記", "住民状態", "住所_郵便番号", "住所_都道府県", "住所_市区郡町村名",
                "住所_町字", "住所_番地号表記", "住所_方書"]


def test_kihon_profile(tmp_path: Path, cli: Cli) -> None:
    rows = [KIHON_HEADER,
            ["2001", "K1", "佐々木　健", "ササキ　ケン", "", "", "", "1", "19800202", "0", "世帯主", "住民", "0292205",
             "岩手県", "陸前高田市", "高田町字館の沖", "12番地3", "コーポ館101"],
            ["2002", "K1", "佐々木　光", "ササキ　ヒカリ", "", "", "", "2", "", "1", "子", "住民", "0292205",
             "岩手県", "陸前高田市", "高田町字館の沖", "12番地3", ""]]
    f = write_csv(tmp_path / "kihon.csv", rows, "cp932")
    code, out, err = cli("registry", "import", f, "--profile", "kihon")
    assert code == 0, err
    con = db_connect(cli.db)
    r = con.execute("SELECT family_name, given_name, family_name_kana, given_name_kana, address, birth_date "
                    "FROM resident WHERE resident_id='2001'").fetchone()
    assert r == ("佐々木", "健", "ササキ", "ケン", "岩手県陸前高田市高田町字館の沖12番地3コーポ館101", "1980-02-02")
    assert con.execute("SELECT birth_date FROM resident WHERE resident_id='2002'").fetchone()[0] is None
    # auto-detection picks kihon from the header
    cli2 = Cli(tmp_path / "other.db")
    code, out, _ = cli2("registry", "import", f)
    assert code == 0 and "profile kihon" in out


def test_user_toml_profile(tmp_path: Path, cli: Cli) -> None:
    prof = tmp_path / "vendor.toml"
    prof.write_text('[profile]\nname = "vendor-x"\n[fields]\nresident_id = "ATENA"\nfull_name = "SHIMEI"\n'
                    'full_name_kana = "KANA"\nbirth_date = "BIRTH"\nsex = "SEX"\n[join]\naddress = ["ADDR1", "ADDR2"]\n',
                    encoding="utf-8")
    f = write_csv(tmp_path / "v.csv", [["ATENA", "SHIMEI", "KANA", "BIRTH", "SEX", "ADDR1", "ADDR2", "MEMO"],
                                       ["9", "東海林 太郎", "ショウジ タロウ", "H2.4.5", "1", "高田町", "1-2", "extra"]])
    code, out, err = cli("registry", "import", f, "--profile", prof)
    assert code == 0, err
    con = db_connect(cli.db)
    r = con.execute("SELECT family_name, given_name_kana, birth_date, address, raw_line FROM resident").fetchone()
    assert r[:4] == ("東海林", "タロウ", "1990-04-05", "高田町1-2")
    assert r[4] == "9,東海林 太郎,ショウジ タロウ,H2.4.5,1,高田町,1-2,extra"  # the row exactly as in the file
    from app.models import Resident

    header = json.loads(con.execute("SELECT header FROM registrysnapshot").fetchone()[0])
    assert Resident(snapshot_id=1, line_no=2, resident_id="9", raw_line=r[4]).raw_fields(header)["MEMO"] == "extra"


def test_bad_profile_is_named(tmp_path: Path, cli: Cli) -> None:
    prof = tmp_path / "bad.toml"
    prof.write_text("[fields]\nbogus = 'X'\n", encoding="utf-8")
    f = write_csv(tmp_path / "v.csv", [HEADER_JA, *ROWS])
    code, _out, err = cli("registry", "import", f, "--profile", prof)
    assert code == 1 and "bad.toml" in err and "bogus" in err


def test_gaiji_map(tmp_path: Path, cli: Cli) -> None:
    rows = [HEADER_JA, ["3001", "G1", "\ue000田", "一", "ヨシダ", "ハジメ", "", "S50.1.1", "1", "世帯主", "", "高田町", ""],
            ["3002", "G2", "\ue001野", "二", "タカノ", "ジ", "", "S50.1.1", "1", "世帯主", "", "高田町", ""]]
    f = write_csv(tmp_path / "g.csv", rows, "cp932")
    assert b"\xf0\x40" in f.read_bytes()  # CP932 user-defined area
    gmap = write_csv(tmp_path / "gaiji.csv", [["code", "char"], ["U+E000", "𠮷"]])
    code, _out, err = cli("registry", "import", f, "--gaiji-map", gmap)
    assert code == 0, err
    con = db_connect(cli.db)
    fam, key = con.execute("SELECT family_name, k_family_variant FROM resident WHERE resident_id='3001'").fetchone()
    assert fam == "\ue000田"  # raw kept as imported
    assert key.startswith("吉田")  # 𠮷 mapped, then folded to 吉
    _fam2, key2 = con.execute("SELECT family_name, k_family_variant FROM resident WHERE resident_id='3002'").fetchone()
    assert "\ue001" not in key2  # unmapped gaiji becomes a wildcard in keys


def test_bad_gaiji_map_names_line(tmp_path: Path, cli: Cli) -> None:
    f = write_csv(tmp_path / "g.csv", [HEADER_JA, *ROWS])
    gmap = write_csv(tmp_path / "gaiji.csv", [["code", "char"], ["U+E000", "𠮷"], ["U+4E00", "一"]])
    code, _out, err = cli("registry", "import", f, "--gaiji-map", gmap)
    assert code == 1 and "gaiji.csv:3" in err
    assert snapshot_count(cli.db) == (0, 0)


@pytest.mark.parametrize("bad_row, line_field", [
    (["", "H9", "山田", "太郎", "ヤマダ", "タロウ", "", "S45.3.1", "1", "", "", "", ""], "宛名番号"),
    (["1001", "H9", "山田", "太郎", "ヤマダ", "タロウ", "", "S45.3.1", "1", "", "", "", ""], "宛名番号"),
    (["1099", "H9", "山田", "太郎", "ヤマダ", "タロウ", "", "1970-02-30", "1", "", "", "", ""], "生年月日"),
    (["1099", "H9", "山田", "太郎", "ヤマダ", "タロウ", "", "昭和45年13月1日", "1", "", "", "", ""], "生年月日"),
    (["1099", "H9", "山田", "太郎", "ヤマダ", "タロウ", "", "S45.3.1", "x", "", "", "", ""], "性別"),
])
def test_bad_row_refuses_whole_file(tmp_path: Path, cli: Cli, bad_row: list[str], line_field: str) -> None:
    good = write_csv(tmp_path / "good.csv", [HEADER_JA, ROWS[0]])
    assert cli("registry", "import", good)[0] == 0
    before = snapshot_count(cli.db)
    f = write_csv(tmp_path / "bad.csv", [HEADER_JA, *ROWS, bad_row])
    code, _out, err = cli("registry", "import", f)
    assert code == 1
    assert "bad.csv:8" in err and line_field in err
    assert snapshot_count(cli.db) == before


def test_undecodable_bytes_name_the_line(tmp_path: Path, cli: Cli) -> None:
    f = write_csv(tmp_path / "bad.csv", [HEADER_JA, *ROWS], "utf-8")
    data = f.read_bytes().replace("京子".encode(), b"\xff\xfe")
    f.write_bytes(data)
    code, _out, err = cli("registry", "import", f, "--encoding", "utf-8")
    assert code == 1 and "bad.csv:3" in err and "decode" in err
    assert snapshot_count(cli.db) == (0, 0)


def test_missing_resident_id_column(tmp_path: Path, cli: Cli) -> None:
    f = write_csv(tmp_path / "nocol.csv", [HEADER_JA[1:], *[r[1:] for r in ROWS]])
    code, _out, err = cli("registry", "import", f)
    assert code == 1 and "nocol.csv:1" in err and "宛名番号" in err


def test_reimport_is_detected_by_hash(tmp_path: Path, cli: Cli) -> None:
    f = write_csv(tmp_path / "juki.csv", [HEADER_JA, *ROWS])
    assert cli("registry", "import", f)[0] == 0
    code, _out, err = cli("registry", "import", f)
    assert code == 0 and "already imported as snapshot 1" in err
    assert snapshot_count(cli.db) == (1, 6)


def test_quarantine_bad_rows_loads_the_good_ones_and_marks_the_snapshot(tmp_path: Path, cli: Cli) -> None:
    """Issue 14 item 13: refused whole by default; with --quarantine-bad-rows the good rows load,
    the bad ones are listed (file, row, field, reason) and the snapshot says it is incomplete."""
    bad = [["1001", "H9", "山田", "太郎", "ヤマダ", "タロウ", "", "S45.3.1", "1", "", "", "", ""],  # line 8: duplicate
           ["1099", "H9", "山田", "次郎", "ヤマダ", "ジロウ", "", "昭和45年13月1日", "1", "", "", "", ""],  # line 9
           ["1098", "H9", "山田", "三郎"],  # line 10: too few columns
           ["1003", "H9", "山田", "四郎", "ヤマダ", "シロウ", "", "S45.3.1", "x", "", "", "", ""]]  # line 11: sex
    f = write_csv(tmp_path / "juki.csv", [HEADER_JA, *ROWS, *bad])
    code, _out, err = cli("registry", "import", f)
    assert code == 1 and "juki.csv:10" in err  # by default the file is refused whole
    assert snapshot_count(cli.db) == (0, 0)
    code, out, err = cli("registry", "import", f, "--quarantine-bad-rows")
    assert code == 0, err
    assert "6 residents" in out and "4 bad rows quarantined" in err and "INCOMPLETE" in err
    report = tmp_path / "juki.quarantine.csv"
    with report.open(encoding="utf-8-sig") as fh:
        import csv

        got = [(r["ファイル"], int(r["行"]), r["項目"], r["理由"]) for r in csv.DictReader(fh)]
    assert [(line, fld) for _f, line, fld, _r in got] == [(8, "宛名番号"), (9, "生年月日"), (10, ""), (11, "性別")]
    assert all(f_ == "juki.csv" for f_, *_ in got)
    assert "2行目と同じ" in got[0][3] and "列の数" in got[2][3]
    assert snapshot_count(cli.db) == (1, 6)
    con = db_connect(cli.db)
    assert con.execute("SELECT given_name FROM resident WHERE resident_id = '1001'").fetchone() == ("一郎",)  # the first kept
    [listed] = cli.json("registry", "list", "--json")
    assert listed["complete"] is False and listed["quarantined"] == 4 and listed["quarantine_report"] == str(report)
    st = cli.json("status", "--json")
    assert st["snapshot"]["quarantined"] == 4 and st["snapshot"]["complete"] is False
    _code, out, _err = cli("status")
    assert "INCOMPLETE: 4 rows quarantined" in out
    _code, out, _err = cli("registry", "list")
    assert "INCOMPLETE" in out
    # a clean file with the option is complete
    good = write_csv(tmp_path / "good.csv", [HEADER_JA, *ROWS[:2]])
    assert cli("registry", "import", good, "--quarantine-bad-rows", "--as-of", "2030-01-01")[0] == 0
    assert cli.json("status", "--json")["snapshot"]["complete"] is True
    assert not (tmp_path / "good.quarantine.csv").exists()
