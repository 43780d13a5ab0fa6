"""Fuzzing USB bundles and receipts (sync/bundles.py, sync/hub/bundles.py).

A bundle carried on a USB stick may be cut short, bit-rotted, replaced by another file or
crafted. The hub must refuse every such file with one of our sync errors (BundleTruncated,
BundleCorrupt, BundleForeign, BundleAlreadyImported) and store nothing; a shelter must refuse a
damaged receipt the same way and acknowledge nothing.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import event, given
from hypothesis import strategies as st

from sync import bundles, outbox
from sync.canonical import sha256_hex
from sync.errors import SyncError
from sync.hub import bundles as hub_bundles, server, store
from tests.fuzz.strategies import fuzz_settings, mutated
from tests.sync.helpers import append_events, enroll_shelter, make_shelter, random_events

_names = itertools.count()


class Setup:
    def __init__(self, d: Path) -> None:
        self.dir = d
        self.app = server.create_hub_app(f"sqlite:///{d / 'hub.db'}")
        self.engine = self.app.state.engine
        self.tc = TestClient(self.app, base_url="http://hub")
        self.shelter = make_shelter(d, "s1")
        enroll_shelter(self.shelter, self.engine, self.tc)
        append_events(self.shelter, random_events(random.Random(7), self.shelter, 30))
        self.bundle = bundles.export_bundle(self.shelter.session, d / "s1.anpi").path.read_bytes()
        # a second bundle, imported, gives us a real receipt (and a bundle the hub has seen)
        append_events(self.shelter, random_events(random.Random(8), self.shelter, 5))
        seen = bundles.export_bundle(self.shelter.session, d / "s1-b.anpi").path
        hub_bundles.import_bundle_file(self.engine, seen, d / "r.receipt")
        self.receipt = (d / "r.receipt").read_bytes()

    def hub_state(self) -> tuple:
        return tuple(store.status(self.engine).items()), tuple(store.held_events(self.engine))

    def shelter_state(self) -> tuple:
        with self.shelter.session() as s:
            return outbox.pending_count(s), tuple(sorted(self.shelter.acked_ids()))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    st_ = Setup(tmp_path_factory.mktemp("bundle-fuzz"))
    yield st_
    st_.tc.close()
    st_.engine.dispose()
    st_.shelter.engine.dispose()


def hub_refuses(setup: Setup, data: bytes) -> None:
    """Refused with a sync error and nothing stored — or, when the damage only touched bytes nobody
    signed (JSON spacing of the clear header, `30` written `30.0`), accepted with exactly the
    shelter's own signed events."""
    before = setup.hub_state()
    try:
        hub_bundles.import_bundle(setup.engine, data)
    except SyncError as exc:
        event(type(exc).__name__)
        assert setup.hub_state() == before
    else:
        event("accepted: only unsigned bytes changed")
        held = {r[3] for r in store.held_events(setup.engine)}
        assert held <= set(setup.shelter.local_events()), "the hub stored events the shelter never signed"


def hub_refuses_strictly(setup: Setup, data: bytes) -> None:
    before = setup.hub_state()
    with pytest.raises(SyncError):
        hub_bundles.import_bundle(setup.engine, data)
    assert setup.hub_state() == before


def split(data: bytes) -> tuple[bytes, bytes]:
    nl = data.index(b"\n", len(bundles.BUNDLE_MAGIC))
    return data[len(bundles.BUNDLE_MAGIC):nl], data[nl + 1:]


def test_every_truncation_is_refused(setup: Setup) -> None:
    data = setup.bundle
    for cut in sorted({*range(0, 200), *range(0, len(data), max(1, len(data) // 150)), len(data) - 1}):
        hub_refuses_strictly(setup, data[:cut])


@fuzz_settings(150)
@given(data=st.binary(max_size=3000))
def test_random_files_are_refused(setup: Setup, data: bytes) -> None:
    hub_refuses_strictly(setup, data)


@fuzz_settings(150)
@given(data=st.data())
def test_damaged_bundles_are_refused(setup: Setup, data: st.DataObject) -> None:
    hub_refuses(setup, data.draw(mutated(setup.bundle, 4)))


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
                    max_leaves=10)
HEADER_KEYS = ["bundle_id", "device_id", "hub_id", "created_at", "events", "ciphertext_length", "ciphertext_sha256"]


@st.composite
def crafted_headers(draw: st.DrawFn, bundle: bytes) -> bytes:
    """The clear header rewritten (checksum and length kept consistent when the fuzzer wants):
    gets past the cheap checks to the device lookup, decryption and signature."""
    header_raw, ct = split(bundle)
    kind = draw(st.sampled_from(["fields", "any-json", "deep", "bytes"]))
    if kind == "fields":
        h = json.loads(header_raw)
        for k in draw(st.lists(st.sampled_from(HEADER_KEYS), max_size=4, unique=True)):
            if draw(st.booleans()):
                h[k] = draw(JSON)
            else:
                h.pop(k)
        if draw(st.booleans()):
            ct = draw(st.one_of(st.binary(max_size=200), mutated(ct, 3)))
            h["ciphertext_length"], h["ciphertext_sha256"] = len(ct), sha256_hex(ct)
        line = json.dumps(h, allow_nan=True).encode()
    elif kind == "any-json":
        line = json.dumps(draw(JSON), allow_nan=True).encode()
    elif kind == "deep":
        n = draw(st.integers(1, 60_000))
        line = draw(st.sampled_from([b"[", b'{"a":'])) * n
    else:
        line = draw(st.binary(max_size=300)).replace(b"\n", b"")
    return bundles.BUNDLE_MAGIC + line + b"\n" + ct


@fuzz_settings(200)
@given(data=st.data())
def test_crafted_headers_are_refused(setup: Setup, data: st.DataObject) -> None:
    hub_refuses(setup, data.draw(crafted_headers(setup.bundle)))


@fuzz_settings(150)
@given(data=st.data())
def test_damaged_receipts_change_nothing(setup: Setup, data: st.DataObject) -> None:
    blob = data.draw(st.one_of(mutated(setup.receipt, 4), st.binary(max_size=500),
                               st.just(bundles.RECEIPT_MAGIC).map(lambda m: m + b"{}\n" + b"A" * 88 + b"\n")))
    p = setup.dir / f"r-{next(_names)}.receipt"
    p.write_bytes(blob)
    before = setup.shelter_state()
    try:
        bundles.import_receipt(setup.shelter.session, p)
    except SyncError:
        assert setup.shelter_state() == before
    else:  # only the hub's signed body line, whatever happened around it
        assert blob.split(b"\n")[1] == setup.receipt.split(b"\n")[1], "a receipt the hub never signed was accepted"


@pytest.mark.slow
@fuzz_settings(1500)
@given(data=st.data())
def test_damaged_and_crafted_bundles_long(setup: Setup, data: st.DataObject) -> None:
    blob = data.draw(st.one_of(mutated(setup.bundle, 12), crafted_headers(setup.bundle)))
    hub_refuses(setup, blob)
