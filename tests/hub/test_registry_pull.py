"""Registry backups at the data center: stored encrypted per municipality; a replacement laptop with
an empty database enrolls, pulls its town's snapshot (signature + SHA-256 verified) and matches offline.

Everything through the real CLI (``anpi …``), a real uvicorn hub on loopback and real PostgreSQL,
with the hub connected as a role that row-level security binds.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from app.cli import app as anpi
from sync import client
from sync.errors import DataKeyError, HubRejected
from sync.hub import registry, server, store, tenants
from tests.hub.conftest import PgHub
from tests.hub.helpers import A, A_NAME, A_PREFIX, B, B_NAME, B_PREFIX, make_town
from tests.sync.helpers import ThreadedServer

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):  # noqa: ANN201
    return runner.invoke(anpi, list(args), env=env or {}, catch_exceptions=False)


@pytest.fixture
def world(pg_hub: PgHub, tmp_path: Path):  # noqa: ANN201
    key = registry.DataKey.generate()
    env = {"ANPI_HUB_DATABASE_URL": pg_hub.url, "ANPI_HUB_DATA_KEY": key.to_text()}
    a = make_town(tmp_path, A, A_NAME, A_PREFIX, residents=400, evacuees=20, seed="futaba")
    b = make_town(tmp_path, B, B_NAME, B_PREFIX, residents=200, evacuees=10, seed="kazo")
    assert run("hub", "municipality", "add", A, A_NAME, env=env).exit_code == 0
    assert run("hub", "municipality", "add", B, B_NAME, env=env).exit_code == 0
    app = server.create_hub_app(pg_hub.url, data_key=key)
    with ThreadedServer(app) as srv:
        yield env, srv.url, app, key, a, b, pg_hub
    app.state.engine.dispose()


def enroll_laptop(tmp_path: Path, env: dict[str, str], url: str, name: str, code: str) -> Path:
    r = run("hub", "enroll", name, "--municipality", code, "--json", env=env)
    assert r.exit_code == 0, r.output
    db = tmp_path / f"{name}.db"
    r = run("--db", str(db), "enroll", "--hub", url, "--code", json.loads(r.stdout)["code"], "--shelter-name", name)
    assert r.exit_code == 0, r.output
    return db


def test_empty_laptop_pulls_its_snapshot_and_matches_offline(world, tmp_path: Path) -> None:  # noqa: ANN001
    env, url, app, key, a, b, pg = world
    r = run("hub", "registry", "import", str(a.registry), "--municipality", A, "--as-of", "2025-03-01", env=env)
    assert r.exit_code == 0, r.output
    assert "400 residents" in r.stdout and f"data key {key.key_id}" in r.stdout
    r = run("hub", "registry", "import", str(a.registry), "--municipality", A, env=env)
    assert r.exit_code == 1 and "already stored" in r.stderr

    db = enroll_laptop(tmp_path, env, url, "加須市の避難所にいる双葉町の端末", A)
    r = run("--db", str(db), "registry", "pull")
    assert r.exit_code == 0, r.output
    sha = hashlib.sha256(a.registry.read_bytes()).hexdigest()
    assert "400 residents" in r.stdout and A_NAME in r.stdout and sha[:16] in r.stdout
    listed = json.loads(run("--db", str(db), "registry", "list", "--json").stdout)
    assert [(x["sha256"], x["rows"], x["as_of"]) for x in listed] == [(sha, 400, "2025-03-01")]
    r = run("--db", str(db), "registry", "pull")
    assert r.exit_code == 0 and r.stdout.startswith("already up to date")

    # offline from here on: stop relying on the hub and match a resident at the desk
    person = next(p for p in a.residents if p["生年月日"] and not p["閲覧制限"] and p["氏"] and p["名"])
    r = run("--db", str(db), "match", "--name", f"{person['氏']} {person['名']}", "--kana",
            f"{person['氏カナ']} {person['名カナ']}", "--birth", person["生年月日"], "--json")
    assert r.exit_code == 0, r.output
    found = json.loads(r.stdout)
    assert found["decision"] == "auto" and found["resident_id"] == person["宛名番号"]

    # the disclosure is in A's audit log, and nowhere else
    with app.state.engine.connect() as c:
        from sync.hub import audit

        assert audit.count(c, A, "registry.pulled") == 1 and audit.count(c, B, "registry.pulled") == 0
        assert audit.verify(c, A) is None


def test_pull_gets_only_its_own_municipality(world, tmp_path: Path) -> None:  # noqa: ANN001
    env, url, app, key, a, b, pg = world
    assert run("hub", "registry", "import", str(a.registry), "--municipality", A, env=env).exit_code == 0
    db_b = enroll_laptop(tmp_path, env, url, "kazo", B)
    r = run("--db", str(db_b), "registry", "pull")
    assert r.exit_code == 1 and "no registry snapshot for this laptop's municipality" in r.stderr
    assert run("hub", "registry", "import", str(b.registry), "--municipality", B, env=env).exit_code == 0
    r = run("--db", str(db_b), "registry", "pull")
    assert r.exit_code == 0 and "200 residents" in r.stdout and B_NAME in r.stdout, r.output


def test_tampered_or_foreign_answers_are_refused(world, tmp_path: Path) -> None:  # noqa: ANN001
    env, url, app, key, a, b, pg = world
    assert run("hub", "registry", "import", str(a.registry), "--municipality", A, env=env).exit_code == 0
    db = enroll_laptop(tmp_path, env, url, "s1", A)
    from app.hub_registry import default_session_factory

    engine, sessions = default_session_factory(db)
    real = httpx.Client(timeout=60)

    def tamper(fn):  # noqa: ANN001, ANN202
        def handler(request: httpx.Request) -> httpx.Response:
            resp = real.send(httpx.Request(request.method, request.url, headers=request.headers,
                                           content=request.content))
            doc = resp.json()
            fn(doc)
            return httpx.Response(resp.status_code, json=doc)
        return httpx.Client(transport=httpx.MockTransport(handler))

    def later_as_of(d: dict) -> None:
        d["manifest"]["as_of"] = "2099-01-01"

    def other_file(d: dict) -> None:
        blob = bytearray(client.crypto.b64d(d["file"]))
        blob[-1] ^= 1
        d["file"] = client.crypto.b64e(bytes(blob))

    with pytest.raises(HubRejected, match="not signed by the hub"):
        client.fetch_registry(sessions, http=tamper(later_as_of))
    with pytest.raises(HubRejected, match="cannot be opened"):  # the single answer older hubs give
        client.fetch_registry(sessions, http=tamper(other_file), chunked=False)
    ok = client.fetch_registry(sessions)
    assert hashlib.sha256(ok.data).hexdigest() == ok.manifest["sha256"] and ok.manifest["municipality_code"] == A
    real.close()
    engine.dispose()


def test_sealed_at_rest_and_refused_with_the_wrong_key(world) -> None:  # noqa: ANN001
    env, url, app, key, a, b, pg = world
    assert run("hub", "registry", "import", str(a.registry), "--municipality", A, env=env).exit_code == 0
    person = a.residents[0]
    admin = create_engine(pg.admin_url)
    with admin.connect() as c:
        file_ct, records_ct = c.execute(text("SELECT file_ct, records_ct FROM hub_registry_snapshot")).one()
        dump = "\n".join(str(r) for r in c.execute(text(
            "SELECT * FROM hub_registry_snapshot")).all()) + "\n".join(
            str(r) for r in c.execute(text("SELECT * FROM hub_restricted")).all())
    admin.dispose()
    for needle in (person["氏"] + person["名"], person["宛名番号"], "宛名番号", A_PREFIX):
        assert needle.encode() not in bytes(file_ct) + bytes(records_ct)
        assert needle not in dump
    engine = app.state.engine
    with engine.connect() as c:
        snap = registry.latest_snapshot(c, A)
    assert snap is not None
    assert registry.open_file(engine, key, A, snap.snapshot_id) == a.registry.read_bytes()
    with pytest.raises(DataKeyError, match="configured key is"):
        registry.open_file(engine, registry.DataKey.generate(), A, snap.snapshot_id)
    # moved into another municipality's row, a sealed file is refused
    with pytest.raises(Exception, match="another snapshot or municipality|no registry snapshot"):
        registry.open_file(engine, key, B, snap.snapshot_id)


def test_bad_registry_file_is_refused_naming_line_and_field(world, tmp_path: Path) -> None:  # noqa: ANN001
    env, url, app, key, a, b, pg = world
    lines = a.registry.read_text(encoding="utf-8").splitlines()
    cells = lines[5].split(",")
    cells[7] = "2025-02-30"  # 生年月日 that does not exist
    lines[5] = ",".join(cells)
    bad = tmp_path / "juki-bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = run("hub", "registry", "import", str(bad), "--municipality", A, env=env)
    assert r.exit_code == 1 and r.stderr.startswith("error: juki-bad.csv:6: field '生年月日'"), r.stderr
    r = run("hub", "registry", "list", "--municipality", A, "--json", env=env)
    assert json.loads(r.stdout) == []
    no_key = {"ANPI_HUB_DATABASE_URL": env["ANPI_HUB_DATABASE_URL"]}
    r = run("hub", "registry", "import", str(a.registry), "--municipality", A, env=no_key)
    assert r.exit_code == 1 and "ANPI_HUB_DATA_KEY" in r.stderr
    r = run("hub", "registry", "import", str(a.registry), env=env)
    assert r.exit_code == 1 and "pass --municipality" in r.stderr


def test_data_key_file(tmp_path: Path) -> None:
    p = tmp_path / "keys" / "hub-data.key"
    r = run("hub", "data-key", "create", "--out", str(p))
    assert r.exit_code == 0 and p.stat().st_mode & 0o777 == 0o600
    key = registry.load_data_key({"ANPI_HUB_DATA_KEY_FILE": str(p)})
    assert key is not None and key.key_id in r.stdout
    assert run("hub", "data-key", "create", "--out", str(p)).exit_code == 1  # never overwritten
    with pytest.raises(DataKeyError, match="32 bytes"):
        registry.load_data_key({"ANPI_HUB_DATA_KEY": "c2hvcnQ="})
    assert tenants.check_digit("07546") == "9" and store.IMPLICIT_TENANT == "000000"
