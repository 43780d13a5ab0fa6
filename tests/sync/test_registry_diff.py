"""Issue 16: a laptop that holds an older snapshot receives only the difference when that is smaller.

Real hub (SQLite, uvicorn on loopback through the shaping proxy), real laptop databases created as the
CLI creates them, the shelter's own import.
"""
from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from typer.testing import CliRunner

from app.cli import app as anpi
from app.hub_registry import pull_into_shelter, store_at_hub
from bench.linkshaper import LinkShaper
from sync import client, registry_base, registry_diff
from sync.errors import HubRejected
from sync.hub import registry, registry_pull, server, tenants
from tests.hub.helpers import A, A_NAME, A_PREFIX, app_shelter, enroll, make_town
from tests.sync.registry_changes import evolve


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Hub with snapshot A; laptop ``old`` pulled A; then the hub stores B (~8 % of 3,000 rows touched)."""
    from tests.sync.helpers import ThreadedServer

    key = registry.DataKey.generate()
    app = server.create_hub_app(f"sqlite:///{tmp_path / 'hub.db'}", data_key=key)
    engine = app.state.engine
    tenants.add_municipality(engine, A, A_NAME)
    town = make_town(tmp_path, A, A_NAME, A_PREFIX, residents=3000, evacuees=2)
    a = town.registry.read_bytes()
    store_at_hub(engine, key, A, town.registry, as_of=date(2025, 3, 1), imported_by="test")
    b_path = tmp_path / "registry_b.csv"
    b_path.write_bytes(evolve(a, 0.08))
    with ThreadedServer(app) as srv, httpx.Client() as http:
        old = app_shelter(tmp_path, "old")
        enroll(old, engine, http, A, srv.url)
        assert pull_into_shelter(old.engine, old.session, srv.url).result is not None
        store_at_hub(engine, key, A, b_path, as_of=date(2025, 4, 1), imported_by="test")
        yield {"app": app, "srv": srv, "http": http, "old": old, "a": a, "b": b_path.read_bytes(), "tmp": tmp_path,
               "key": key}
    registry_pull._cache.clear()
    engine.dispose()


def residents(sh: Any) -> list[tuple[Any, ...]]:
    with sh.engine.connect() as conn:
        sid = conn.execute(text("SELECT id FROM registrysnapshot ORDER BY as_of DESC, id DESC LIMIT 1")).scalar_one()
        return [tuple(r) for r in conn.execute(text(
            "SELECT line_no, resident_id, household_id, family_name, given_name, birth_date, address, restricted, "
            "raw_line, k_family_variant, k_house FROM resident WHERE snapshot_id = :s ORDER BY line_no"), {"s": sid})]


def test_difference_rebuilds_every_kind_of_change() -> None:
    a = b"\xef\xbb\xbfid,name\r\n1,a\r\n2,b\r\n2,b\r\n3,c"
    for b in (a, b"", a + b"\r\n4,d\r\n", b"id,name\r\n3,c\r\n1,a\r\n2,b", a.replace(b"2,b", b"2,B", 1)):
        assert registry_diff.apply(a, registry_diff.make(a, b), len(b)) == b
    with pytest.raises(registry_diff.DiffError):
        registry_diff.apply(b"one line\n", registry_diff.make(a, a), len(a))  # refers to lines it lacks
    with pytest.raises(registry_diff.DiffError):
        registry_diff.apply(a, registry_diff.make(a, a * 3), len(a))  # larger than the signed size


def test_laptop_with_older_snapshot_receives_only_the_difference(world) -> None:  # type: ignore[no-untyped-def]
    w = world
    base = registry_base.load(w["old"].session, registry_base.path_for(w["old"].path))
    assert base is not None and base == (hashlib.sha256(w["a"]).hexdigest(), w["a"])
    assert w["a"][:4000] not in w["old"].path.with_name("old.db.registry-base").read_bytes()  # sealed, not plain
    with LinkShaper(w["srv"].port, kbps=100_000, rtt_ms=0) as link:  # through the CLI, as staff run it
        r = CliRunner().invoke(anpi, ["--db", str(w["old"].path), "registry", "pull", "--hub", link.url],
                               catch_exceptions=False)
        diff_bytes = link.bytes_down
    assert r.exit_code == 0 and "only the difference to the previous snapshot was sent" in r.stdout, r.output
    assert hashlib.sha256(w["b"]).hexdigest()[:16] in r.stdout

    fresh = app_shelter(w["tmp"], "fresh")  # a laptop without A: the full file
    enroll(fresh, w["app"].state.engine, w["http"], A, w["srv"].url)
    with LinkShaper(w["srv"].port, kbps=100_000, rtt_ms=0) as link:
        full = pull_into_shelter(fresh.engine, fresh.session, link.url)
        full_bytes = link.bytes_down
    assert full.via == "file" and full.result is not None
    assert diff_bytes * 3 < full_bytes, (diff_bytes, full_bytes)
    assert residents(w["old"]) == residents(fresh)  # the same snapshot as a full pull
    assert registry_base.load(w["old"].session, registry_base.path_for(w["old"].path))[1] == w["b"]
    # the next pull: nothing new
    assert pull_into_shelter(w["old"].engine, w["old"].session, w["srv"].url).result is None


def test_laptop_without_its_kept_copy_gets_the_full_file(world) -> None:  # type: ignore[no-untyped-def]
    w = world
    registry_base.path_for(w["old"].path).unlink()
    out = pull_into_shelter(w["old"].engine, w["old"].session, w["srv"].url)
    assert out.via == "file" and out.result is not None
    assert out.result.snapshot.sha256 == hashlib.sha256(w["b"]).hexdigest()


def test_a_tampered_difference_is_refused(world, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    w = world
    real = registry_pull.sealed_diff

    def tampered(*args, **kw):  # type: ignore[no-untyped-def]
        blob = real(*args, **kw)
        return blob[:40] + bytes([blob[40] ^ 1]) + blob[41:]

    monkeypatch.setattr(registry_pull, "sealed_diff", tampered)
    with pytest.raises(HubRejected, match="cannot be opened"):
        pull_into_shelter(w["old"].engine, w["old"].session, w["srv"].url)
    with w["old"].engine.connect() as conn:  # nothing imported: the laptop keeps A
        assert conn.execute(text("SELECT count(*) FROM registrysnapshot")).scalar_one() == 1


def test_a_wrong_rebuild_falls_back_to_the_full_file(world) -> None:  # type: ignore[no-untyped-def]
    w = world
    a_sha = hashlib.sha256(w["a"]).hexdigest()
    lines = w["a"].splitlines(keepends=True)
    lines[5] = lines[5].replace(b"1", b"2", 1)  # the laptop's copy is not quite A
    got = client.fetch_registry(w["old"].session, w["srv"].url, have=a_sha, base=(a_sha, b"".join(lines)))
    assert got.via == "file-after-diff" and got.data == w["b"]
    got = client.fetch_registry(w["old"].session, w["srv"].url, have=a_sha, base=(a_sha, w["a"]))
    assert got.via == "diff" and got.data == w["b"]


def test_difference_only_when_smaller(world) -> None:  # type: ignore[no-untyped-def]
    w = world
    a_sha = hashlib.sha256(w["a"]).hexdigest()
    unrelated = make_town(w["tmp"] / "other", A, A_NAME, A_PREFIX, residents=3000, evacuees=2, seed="other")
    store_at_hub(w["app"].state.engine, w["key"], A, unrelated.registry, as_of=date(2025, 5, 1), imported_by="test")
    got = client.fetch_registry(w["old"].session, w["srv"].url, have=a_sha, base=(a_sha, w["a"]))
    assert got.via == "file" and got.data == unrelated.registry.read_bytes()



def test_a_pull_cut_off_resumes_in_the_next_run(world, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The first run dies after two chunks; the next run fetches only the chunks it lacks."""
    from sync import registry_fetch
    from sync.errors import HubUnavailable

    w = world
    monkeypatch.setattr(registry_pull, "CHUNK", 4096)
    registry_base.path_for(w["old"].path).unlink()  # the full file: many chunks
    real, asked = registry_pull.chunk, []

    def dying(*args, **kw):  # type: ignore[no-untyped-def]
        asked.append(args[5])
        if len(asked) > 2:
            raise ConnectionError("the satellite call dropped")
        return real(*args, **kw)

    monkeypatch.setattr(registry_pull, "chunk", dying)
    monkeypatch.setattr(registry_fetch, "MAX_TRIES", 2)
    monkeypatch.setattr(registry_fetch.time, "sleep", lambda s: None)
    with pytest.raises(HubUnavailable):
        pull_into_shelter(w["old"].engine, w["old"].session, w["srv"].url)
    keep = registry_base.partial_for(w["old"].path)
    kept = sorted(p.name for p in keep.rglob("*") if p.is_file())
    assert kept == ["0", "1"]
    assert not any(w["b"][:200] in p.read_bytes() for p in keep.rglob("*") if p.is_file())  # sealed chunks only

    asked.clear()
    monkeypatch.setattr(registry_pull, "chunk", lambda *a, **kw: asked.append(a[5]) or real(*a, **kw))
    out = pull_into_shelter(w["old"].engine, w["old"].session, w["srv"].url)
    assert out.result is not None and out.result.snapshot.sha256 == hashlib.sha256(w["b"]).hexdigest()
    assert asked and 0 not in asked and 1 not in asked and min(asked) == 2
    assert not keep.exists()
