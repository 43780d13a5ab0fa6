"""USB bundles: export/verify, refusals that change nothing, replays, receipts, ordering."""
from __future__ import annotations

import sqlite3

import random
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sync import bundles, outbox
from sync.errors import (
    BundleAlreadyImported, BundleCorrupt, BundleForeign, BundleTruncated, NotEnrolled,
)
from sync.hub import bundles as hub_bundles, server, store
from tests.sync.helpers import connect_file, append_events, enroll_shelter, hub_ids, make_shelter, random_events, sync


@pytest.fixture
def hub(hub_db_url: str):  # noqa: ANN201
    app = server.create_hub_app(hub_db_url)
    with TestClient(app, base_url="http://hub") as tc:
        yield app, tc
    app.state.engine.dispose()


def shelter(tmp_path: Path, app, tc, name: str = "s1", n: int = 25, seed: int = 0):  # noqa: ANN001, ANN201
    sh = make_shelter(tmp_path, name)
    enroll_shelter(sh, app.state.engine, tc)
    append_events(sh, random_events(random.Random(seed), sh, n))
    return sh


def snapshot(engine) -> tuple:  # noqa: ANN001
    return tuple(store.status(engine).items()), tuple(store.held_events(engine))


def test_round_trip_export_import_receipt(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc)
    info = bundles.export_bundle(sh.session, tmp_path / "usb" / "s1.anpi")
    assert info.events == 25 and info.path.exists()
    assert not list((tmp_path / "usb").glob(".*tmp*"))  # temp file renamed away
    with sh.session() as s:
        assert outbox.pending_count(s) == 25  # exporting never counts as delivered
    out = hub_bundles.import_bundle_file(app.state.engine, info.path, tmp_path / "r.receipt")
    assert (out.new, out.duplicates, out.forks) == (25, 0, 0)
    assert set(hub_ids(app.state.engine)) == set(sh.local_events())
    r = bundles.import_receipt(sh.session, tmp_path / "r.receipt")
    assert (r.acknowledged, r.pending) == (25, 0)
    with sh.session() as s:
        assert outbox.last_sync(s) is not None
    # importing the receipt again is harmless
    assert bundles.import_receipt(sh.session, tmp_path / "r.receipt").acknowledged == 0


def test_refused_bundles_change_nothing(tmp_path: Path, hub, hub_db_url: str) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc)
    data = bundles.export_bundle(sh.session, tmp_path / "b.anpi").path.read_bytes()
    before = snapshot(app.state.engine)
    cases = {
        "truncated": (data[: len(data) - 100], BundleTruncated, "truncated"),
        "cut-in-header": (data[:20], BundleTruncated, "truncated"),
        "bitflip": (data[:-50] + bytes([data[-50] ^ 1]) + data[-49:], BundleCorrupt, "checksum"),
        "garbage": (b"PK\x03\x04 not a bundle", BundleCorrupt, "not an Anpi bundle"),
        "extra-bytes": (data + b"x", BundleCorrupt, "extra bytes"),
    }
    # header claims another device: refused (unknown device) before decryption
    hdr_end = data.index(b"\n", len(bundles.BUNDLE_MAGIC))
    header = data[len(bundles.BUNDLE_MAGIC):hdr_end]
    dev = sh.device().device_id
    cases["other-device"] = (data.replace(header, header.replace(dev.encode(), b"Z" * 26)), BundleForeign,
                             "not enrolled")
    for name, (blob, exc, msg) in cases.items():
        with pytest.raises(exc, match=msg):
            hub_bundles.import_bundle(app.state.engine, blob)
        assert snapshot(app.state.engine) == before, name


def test_foreign_hub_and_forged_bundles(tmp_path: Path, hub, pg_url: str) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc)
    data = bundles.export_bundle(sh.session, tmp_path / "b.anpi").path.read_bytes()
    other = server.create_hub_app(pg_url)  # another municipality's hub
    with pytest.raises(BundleForeign, match="addressed to hub"):
        hub_bundles.import_bundle(other.state.engine, data)
    # a device enrolled here forging a bundle in another device's name cannot decrypt/sign it right
    mallory = shelter(tmp_path, app, tc, "mallory", n=2, seed=9)
    forged = bundles.export_bundle(mallory.session, tmp_path / "m.anpi").path.read_bytes()
    hdr_end = forged.index(b"\n", len(bundles.BUNDLE_MAGIC))
    header = forged[len(bundles.BUNDLE_MAGIC):hdr_end]
    forged = forged.replace(header, header.replace(mallory.device().device_id.encode(), sh.device().device_id.encode()))
    with pytest.raises(BundleCorrupt, match="decrypted"):
        hub_bundles.import_bundle(app.state.engine, forged)
    other.state.engine.dispose()


def test_replayed_bundle_is_harmless_and_says_so(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc)
    path = bundles.export_bundle(sh.session, tmp_path / "b.anpi").path
    hub_bundles.import_bundle_file(app.state.engine, path)
    before = snapshot(app.state.engine)
    with pytest.raises(BundleAlreadyImported, match="already imported") as ei:
        hub_bundles.import_bundle_file(app.state.engine, path, tmp_path / "again.receipt")
    assert ei.value.receipt and (tmp_path / "again.receipt").exists()
    assert snapshot(app.state.engine) == before
    # the re-issued receipt still acknowledges everything (lost receipt recovered)
    assert bundles.import_receipt(sh.session, tmp_path / "again.receipt").pending == 0


def test_bundles_out_of_order_and_mixed_with_online_sync(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc, n=10)
    b1 = bundles.export_bundle(sh.session, tmp_path / "b1.anpi").path          # seq 1..10
    append_events(sh, random_events(random.Random(1), sh, 10))
    b2 = bundles.export_bundle(sh.session, tmp_path / "b2.anpi").path          # seq 1..20
    o2 = hub_bundles.import_bundle_file(app.state.engine, b2, tmp_path / "r2")  # newer first
    o1 = hub_bundles.import_bundle_file(app.state.engine, b1, tmp_path / "r1")
    assert (o2.new, o1.new, o1.all_known) == (20, 0, True)
    append_events(sh, random_events(random.Random(2), sh, 5))
    assert bundles.import_receipt(sh.session, tmp_path / "r2").pending == 5
    assert bundles.import_receipt(sh.session, tmp_path / "r1").acknowledged == 0  # old receipt: no-op
    assert sync(sh, tc).ok
    assert set(hub_ids(app.state.engine)) == set(sh.local_events())


def test_receipt_checks(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    a = shelter(tmp_path, app, tc, "a")
    b = shelter(tmp_path, app, tc, "b", seed=1)
    path = bundles.export_bundle(a.session, tmp_path / "a.anpi").path
    hub_bundles.import_bundle_file(app.state.engine, path, tmp_path / "a.receipt")
    with pytest.raises(BundleForeign, match="for device"):
        bundles.import_receipt(b.session, tmp_path / "a.receipt")
    raw = (tmp_path / "a.receipt").read_bytes()
    (tmp_path / "forged.receipt").write_bytes(raw.replace(b'"seq":25', b'"seq":99'))
    with pytest.raises(BundleForeign, match="signature"):
        bundles.import_receipt(a.session, tmp_path / "forged.receipt")
    with a.session() as s:
        assert outbox.pending_count(s) == 25


def test_receipt_does_not_ack_a_restored_laptops_new_events(tmp_path: Path, hub) -> None:  # noqa: ANN001
    app, tc = hub
    sh = shelter(tmp_path, app, tc, n=5)
    src, dst = connect_file(sh.path), connect_file(tmp_path / "backup.db", like=sh.path)
    src.backup(dst)
    src.close(), dst.close()
    append_events(sh, random_events(random.Random(3), sh, 5))
    path = bundles.export_bundle(sh.session, tmp_path / "b.anpi").path  # seq 1..10 (lost laptop's)
    hub_bundles.import_bundle_file(app.state.engine, path, tmp_path / "r")
    sh.engine.dispose()
    shutil.copy(tmp_path / "backup.db", sh.path)
    for suffix in ("-wal", "-shm"):
        Path(str(sh.path) + suffix).unlink(missing_ok=True)
    sh.reopen()
    append_events(sh, random_events(random.Random(4), sh, 3))  # re-used numbers 6..8
    info = bundles.import_receipt(sh.session, tmp_path / "r")
    assert info.mismatched_epochs == [1] and info.pending == 8  # nothing silently "delivered"


def test_export_needs_enrolment(tmp_path: Path) -> None:
    sh = make_shelter(tmp_path, "offline")
    append_events(sh, random_events(random.Random(1), sh, 2))
    with pytest.raises(NotEnrolled):
        bundles.export_bundle(sh.session, tmp_path / "x.anpi")


def test_a_copied_laptops_bundle_receipt_acknowledges_only_what_the_hub_stored(tmp_path: Path, hub) -> None:  # noqa: ANN001
    """Two laptops run one database (a file copy): the second's bundle collides; its receipt
    names the forks, which stay pending (the rest of the bundle is acknowledged), and the same
    bundle imported again says the same."""
    app, tc = hub
    a = shelter(tmp_path, app, tc, n=5)
    src, dst = sqlite3.connect(a.path), sqlite3.connect(tmp_path / "b.db")
    src.backup(dst)
    src.close(), dst.close()
    from tests.sync.helpers import Shelter, sqlite_engine

    b = Shelter("b", tmp_path / "b.db", sqlite_engine(tmp_path / "b.db"), evacuees=list(a.evacuees))
    append_events(a, random_events(random.Random(7), a, 4))  # seq 6..9
    append_events(b, random_events(random.Random(8), b, 4))  # seq 6..9 too, other events
    assert sync(a, tc).ok
    path = bundles.export_bundle(b.session, tmp_path / "b.anpi").path  # seq 1..9 of b (1..5 shared)
    for receipt in ("r1", "r2"):
        try:
            hub_bundles.import_bundle_file(app.state.engine, path, tmp_path / receipt)
        except BundleAlreadyImported:
            pass
        info = bundles.import_receipt(b.session, tmp_path / receipt)
        assert info.forked == 4 and info.pending == 4
    held = {(x[3], x[4]) for x in store.held_events(app.state.engine)}
    local = b.local_events()
    assert all((eid, local[eid][3]) in held for eid in b.acked_ids())
    assert store.status(app.state.engine)["review_items"] == 4
    with b.session() as s:
        assert outbox.sync_health(s)["forked"] == 4
