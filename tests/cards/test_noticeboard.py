"""掲示用名簿: only ⑭ 公表 consent, never a 閲覧制限 person or their household, 町字 only, 五十音 order,
shelter and time on the page; the PDF read back with pypdf, the CSV through the one table writer."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sqlmodel import Session

from app.db import open_shelter_db
from app.services.roster import EvacueeInput, register, register_household
from tests.conftest import Cli
from tests.web.helpers import build_shelter

ADDR = "岩手県陸前高田市高田町字館の沖12-3"


def _people(db: Path) -> dict[str, str]:
    eng = open_shelter_db(db)
    with Session(eng) as s:
        def one(name: str, kana: str, consent: bool | None, **kw) -> str:  # type: ignore[no-untyped-def]
            return register(s, EvacueeInput(name=name, name_kana=kana, birth_date="1980-01-01", address=ADDR,
                                             consent_public=consent, **kw), by="t").id
        ids = {"wada": one("和田 一", "ワダ ハジメ", True), "ando": one("安藤 二郎", "アンドウ ジロウ", True),
               "goto": one("後藤 三", "ゴトウ サン", True), "kato": one("加藤 四", "カトウ シ", True),
               "no": one("野口 拒否", "ノグチ キョヒ", False), "unknown": one("上田 未確認", "ウエダ ミカクニン", None),
               "formula": one("=HYPERLINK(\"x\")", "イコール", True)}
        mother, child = register_household(s, [
            EvacueeInput(name="秘匿 母", name_kana="ヒトク ハハ", address=ADDR, consent_public=True, care_flags={"restricted": True}),
            EvacueeInput(name="秘匿 子", name_kana="ヒトク コ", address=ADDR, consent_public=True)], by="t")
        ids["mother"], ids["child"] = mother.id, child.id
        gone = register(s, EvacueeInput(name="退所 済", name_kana="タイショ スミ", consent_public=True), by="t")
        from app.services.evacuees import check_out

        check_out(s, gone.id, by="t")
        s.commit()
    eng.dispose()
    return ids


def test_noticeboard_pdf_and_csv(tmp_path: Path) -> None:
    sh = build_shelter(tmp_path, evacuees=False)
    _people(sh.db_path)
    cli = Cli(sh.db_path)
    for paper in ("a4", "a3"):
        out = tmp_path / f"board-{paper}.pdf"
        code, stdout, err = cli("export", "noticeboard", "--format", "pdf", "--out", out, "--paper", paper)
        assert code == 0, err
        assert "5 people" in stdout and "2 left out" in stdout
        import pypdf

        text = "".join("".join(p.extract_text().split()) for p in pypdf.PdfReader(out).pages)
        names = ["安藤二郎", "加藤四", "後藤三", "和田一"]  # ア カ コ(ゴ) ワ; イコール between ア and カ
        pos = [text.index(n) for n in names]
        assert pos == sorted(pos)
        assert text.index("安藤二郎") < text.index("HYPERLINK") < text.index("加藤四")
        assert "高田町字館の沖" in text or "高田町館の沖" in text
        assert "12-3" not in text and "陸前高田市" not in text.replace("避難者名簿", "")
        for hidden in ("秘匿", "野口", "上田", "退所済"):
            assert hidden not in text
        assert "避難者名簿（掲示用）" in text and "避難所" in text and "現在" in text
    out = tmp_path / "board.csv"
    code, _, err = cli("export", "noticeboard", "--format", "csv", "--out", out)
    assert code == 0, err
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["ふりがな", "氏名", "町字", "避難所", "作成日時"]
    assert [r[1] for r in rows[1:]] == ["安藤 二郎", "'=HYPERLINK(\"x\")", "加藤 四", "後藤 三", "和田 一"]
    assert {r[3] for r in rows[1:]} == {"避難所"} and all(r[4] for r in rows[1:])
    assert all("12" not in r[2] for r in rows[1:])
    code, _, err = cli("export", "noticeboard", "--format", "xlsx", "--out", tmp_path / "x.xlsx")
    assert code == 1 and "pdf or csv" in err
    code, out_text, err = cli("audit", "verify")
    assert code == 0, err
