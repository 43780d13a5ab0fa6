"""The hub's tenant commands (ARCHITECTURE.md §2) as a user types them: one line per failure, exit 1."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app as anpi
from sync.hub import store
from tests.hub.helpers import A, A_NAME, B, B_NAME

runner = CliRunner()


def run(env: dict[str, str], *args: str):  # noqa: ANN201
    return runner.invoke(anpi, list(args), env=env, catch_exceptions=False)


def one_line_error(r, text: str) -> bool:  # noqa: ANN001
    return r.exit_code == 1 and r.stderr.count("\n") == 1 and text in r.stderr


def test_municipalities_users_agreements(tmp_path: Path) -> None:
    env = {"ANPI_HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "USER": "it-staff"}
    r = run(env, "hub", "enroll", "before", "--json")  # no municipality yet: the implicit tenant
    assert r.exit_code == 0 and json.loads(r.stdout)["municipality"] == store.IMPLICIT_TENANT
    assert one_line_error(run(env, "hub", "municipality", "add", "075460", A_NAME), "check digit should be 9")
    assert run(env, "hub", "municipality", "add", A, A_NAME).stdout == f"municipality {A} {A_NAME} added\n"
    assert run(env, "hub", "municipality", "add", B, B_NAME).exit_code == 0
    assert json.loads(run(env, "hub", "municipality", "list", "--json").stdout) == [
        {"municipality_code": A, "name": A_NAME}, {"municipality_code": B, "name": B_NAME}]
    assert one_line_error(run(env, "hub", "enroll", "x"), "pass --municipality")
    r = run(env, "hub", "enroll", "第二中学校", "--municipality", B)
    assert r.exit_code == 0 and f"of {B}" in r.stdout
    assert one_line_error(run(env, "hub", "user", "add", "--name", "sato", "--role", "hq"), "pass --municipality")
    assert one_line_error(run(env, "hub", "user", "add", "--name", "sato", "--role", "boss", "--municipality", A),
                          "role must be one of hq, desk, admin")
    r = run(env, "hub", "user", "add", "--name", "sato", "--role", "admin", "--municipality", A, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["token"].startswith("anpi-hq-")
    assert one_line_error(run(env, "hub", "user", "add", "--name", "sato", "--role", "hq", "--municipality", A),
                          "already exists")
    assert json.loads(run(env, "hub", "user", "list", "--municipality", B, "--json").stdout) == []
    assert run(env, "hub", "user", "disable", "sato", "--municipality", A).exit_code == 0
    assert json.loads(run(env, "hub", "user", "list", "--municipality", A, "--json").stdout)[0]["disabled"] is True
    assert one_line_error(run(env, "hub", "user", "disable", "sato", "--municipality", B), "no active user")
    r = run(env, "hub", "share", "--home", A, "--host", B)
    assert r.exit_code == 0 and r.stdout.startswith(f"agreement {A} → {B} recorded")
    assert "already active" in run(env, "hub", "share", "--home", A, "--host", B).stdout
    assert one_line_error(run(env, "hub", "share", "--home", A, "--host", "131016"), "unknown municipality 131016")
    assert run(env, "hub", "unshare", "--home", A, "--host", B).stdout == f"agreement {A} → {B} revoked\n"
    assert one_line_error(run(env, "hub", "unshare", "--home", A, "--host", B), "no active agreement")
    st = json.loads(run(env, "hub", "status", "--json", "--municipality", B).stdout)
    assert st.pop("replication")["role"] == "primary"  # a SQLite hub: no standby
    assert st == {"devices": 0, "events": 0, "evacuees": 0, "people": 0, "forks": 0, "review_items": 0}
    rows = json.loads(run(env, "hub", "devices", "--json", "--municipality", B).stdout)
    assert [d["name"] for d in rows] == ["第二中学校"]
    assert len(json.loads(run(env, "hub", "devices", "--json").stdout)) == 2
    assert one_line_error(run(env, "hub", "export", "anpi-list", "--municipality", A, "--format", "docx",
                              "--out", str(tmp_path / "x.docx")), "--format must be one of csv, xlsx, pdf")
    r = run(env | {"ANPI_HUB_DATA_KEY": "A" * 43 + "="}, "hub", "export", "anpi-list", "--municipality", A,
            "--format", "csv", "--out", str(tmp_path / "x.csv"))
    assert one_line_error(r, "no registry backup for municipality")
    r = run(env | {"ANPI_HUB_DATA_KEY": "A" * 43 + "="}, "hub", "crossmatch", "run")
    assert r.exit_code == 0 and r.stdout.startswith("cross-town matching: 0 evacuees looked at"), r.output
    engine = store.open_hub_engine(env["ANPI_HUB_DATABASE_URL"])
    from sync.hub import audit

    with engine.connect() as c:
        assert [e["action"] for e in audit.entries(c, A)][:3] == ["share.revoked", "share.granted", "user.disabled"]
        assert audit.entries(c, A)[0]["detail"]["host_name"] == B_NAME
        assert audit.entries(c, A)[0]["seq"] == 5 and audit.verify(c, A) is None
    engine.dispose()
