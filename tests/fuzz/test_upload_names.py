"""Uploads with awkward file names ("..", "/", 300 characters, a Windows path) never answer 5xx.

Found by tests/fuzz/test_api_schemathesis.py: the upload routes created `tmp/<file name>`, so a
file named ".." or longer than the file system allows made the import answer 500.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.web.helpers import HEADER, REGISTRY, build_shelter, login

NAMES = [".", "..", "/", "a/..", "x" * 300 + ".csv", "名簿" * 120 + ".csv", "C:\\Users\\staff\\meibo.csv"]
ROSTER = "受付番号,氏名,生年月日\r\n{n},山田 太郎,S45.3.1\r\n"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    sh = build_shelter(tmp_path_factory.mktemp("uploads"), evacuees=False)
    app = create_app(sh.db_path)
    with TestClient(app, raise_server_exceptions=False) as c:
        login(c, "管理")
        yield c
    app.state.engine.dispose()


@pytest.mark.parametrize("name", NAMES)
def test_upload_names(client: TestClient, name: str) -> None:
    csrf = client.get("/api/session").json()["csrf_token"]
    h = {"X-CSRF-Token": csrf}
    n = NAMES.index(name)
    roster = ROSTER.format(n=n).encode()
    registry = ("\r\n".join(",".join(r) for r in [HEADER, *REGISTRY, [f"9{n}"] + [""] * 12]) + "\r\n").encode()
    calls = [
        ("/api/roster/import", roster.replace(b"S45", b"S46")),
        ("/roster/import", roster),
        ("/api/registry/import", registry),
        ("/admin/registry", registry.replace(b"\r\n9", b"\r\n8")),
    ]
    for url, body in calls:
        r = client.post(url, files={"file": (name, body)}, data={"csrf_token": csrf}, headers=h)
        assert r.status_code < 500, (url, name, r.status_code, r.text[:300])
        assert r.status_code in (200, 202, 303), (url, name, r.status_code, r.text[:300])
    # the 捜索依頼 (PFIF) upload takes any name too: a PFIF file, refused or read, never a 500
    pfif = b'<?xml version="1.0" encoding="UTF-8"?><pfif:pfif xmlns:pfif="http://zesty.ca/pfif/1.4"></pfif:pfif>'
    r = client.post("/desk/sought/import", files={"file": (name, pfif)}, data={"csrf_token": csrf}, headers=h)
    assert r.status_code < 500, ("/desk/sought/import", name, r.status_code, r.text[:300])
