"""Hypothesis stateful simulation: several shelters, one hub, an unreliable world.

Shelters (real SQLite files) append events, sync through a fault-injecting transport
(dropped requests, lost replies, 500s, duplicated and held-back/reordered requests), carry
USB bundles and receipts in any order (or twice), get restored from backups (new epoch), and
have their clocks jump.  The hub runs in-process (its ASGI app through httpx) on a fresh
PostgreSQL schema per example (or SQLite for the ``sqlite`` variant).

Invariants, after every step:
  * every event a shelter holds as acknowledged is on the hub, byte-identical;
  * everything ever acknowledged stays on the hub (even after the laptop lost it);
  * each local stream (device, epoch) is numbered 1..n without gaps.
After a final fault-free sync of every shelter:
  * nothing pending anywhere; hub events == union of all laptops' events (+ only events that
    really existed); each stored exactly once; no forks; hub feed numbers 1..N without gaps;
  * every shelter has pulled exactly every other device's events; SQLite integrity ok.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select, text

from sync import bundles, outbox
from sync.errors import BundleAlreadyImported, BundleError
from sync.hub import bundles as hub_bundles, server, store
from tests.sync.conftest import drop_pg_schema, new_pg_schema, require_pg
from tests.sync.helpers import (connect_file,
    Shelter, append_events, enroll_shelter, faulty_client, hub_ids, make_shelter, random_events, sync,
)

FAULTS = ["ok", "ok", "drop_request", "drop_reply", "error500", "duplicate", "delay"]


class SyncWorld(RuleBasedStateMachine):
    backend = "postgres"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="anpi-sim-"))
        self.schema: str | None = None
        if self.backend == "postgres":
            self.schema, url = new_pg_schema()
        else:
            url = f"sqlite:///{self.tmp / 'hub.db'}"
        self.hub_offset = 0.0
        self.app = server.create_hub_app(url, clock=lambda: time.time() + self.hub_offset)
        self.hub = self.app.state.engine
        self.tc = TestClient(self.app, base_url="http://hub")
        self.shelters: list[Shelter] = []
        self.rng = random.Random(0)
        self.ever_appended: dict[str, tuple[str, int, int, str]] = {}
        self.ever_acked: dict[str, tuple[str, int, int, str]] = {}
        self.backups: dict[int, Path] = {}
        self.bundles: list[tuple[int, Path]] = []
        self.receipts: list[tuple[int, Path]] = []
        self.limbo: list[Any] = []
        self.n_files = 0

    # ---- setup ----------------------------------------------------------------------------------
    @initialize(n=st.integers(min_value=2, max_value=5), seed=st.integers(0, 2**16))
    def setup(self, n: int, seed: int) -> None:
        self.rng = random.Random(seed)
        for i in range(n):
            sh = make_shelter(self.tmp, f"s{i}")
            if i % 2 == 0:  # some laptops record events before they ever enrol
                self._append(sh, 3)
            enroll_shelter(sh, self.hub, self.tc)
            self.shelters.append(sh)

    def _append(self, sh: Shelter, k: int) -> None:
        append_events(sh, random_events(self.rng, sh, k))
        self.ever_appended.update(sh.local_events())

    def _file(self, suffix: str) -> Path:
        self.n_files += 1
        return self.tmp / f"f{self.n_files}{suffix}"

    # ---- rules -----------------------------------------------------------------------------------
    @rule(i=st.integers(0, 4), k=st.integers(1, 40))
    def append(self, i: int, k: int) -> None:
        self._append(self.shelters[i % len(self.shelters)], k)

    @rule(i=st.integers(0, 4), k=st.integers(1, 5))
    def append_then_rollback(self, i: int, k: int) -> None:
        sh = self.shelters[i % len(self.shelters)]
        with sh.session() as s:
            for e in random_events(self.rng, sh, k):
                outbox.append(s, e)
            s.rollback()

    @rule(i=st.integers(0, 4), plan=st.lists(st.sampled_from(FAULTS), max_size=6),
          batch=st.sampled_from([3, 17, 500]))
    def sync_unreliably(self, i: int, plan: list[str], batch: int) -> None:
        sh = self.shelters[i % len(self.shelters)]
        http, t = faulty_client(self.tc, plan)
        sync(sh, http, batch_size=batch, max_retries=2)
        self.limbo.extend(t.limbo)

    @rule()
    def late_delivery(self) -> None:
        """Held-back requests arrive now, in random order (reordered, possibly stale)."""
        self.rng.shuffle(self.limbo)
        while self.limbo:
            self.tc.send(self.limbo.pop())

    @rule(i=st.integers(0, 4))
    def export_bundle(self, i: int) -> None:
        idx = i % len(self.shelters)
        info = bundles.export_bundle(self.shelters[idx].session, self._file(".anpi"))
        self.bundles.append((idx, info.path))

    @precondition(lambda self: bool(self.bundles))
    @rule(pick=st.integers(0, 50), keep=st.booleans())
    def carry_bundle_to_hub(self, pick: int, keep: bool) -> None:
        idx, path = self.bundles[pick % len(self.bundles)]
        if not keep:
            self.bundles.remove((idx, path))
        receipt = self._file(".receipt")
        try:
            hub_bundles.import_bundle_file(self.hub, path, receipt)
        except BundleAlreadyImported:
            pass
        self.receipts.append((idx, receipt))

    @precondition(lambda self: bool(self.bundles))
    @rule(pick=st.integers(0, 50), cut=st.integers(1, 400))
    def damaged_bundle_is_refused(self, pick: int, cut: int) -> None:
        _, path = self.bundles[pick % len(self.bundles)]
        before = hub_ids(self.hub)
        data = path.read_bytes()
        try:
            hub_bundles.import_bundle(self.hub, data[: max(0, len(data) - cut)])
            raise AssertionError("truncated bundle accepted")
        except BundleError:
            pass
        assert hub_ids(self.hub) == before

    @precondition(lambda self: bool(self.receipts))
    @rule(pick=st.integers(0, 50))
    def carry_receipt_home(self, pick: int) -> None:
        idx, path = self.receipts.pop(pick % len(self.receipts))
        if path.exists():
            bundles.import_receipt(self.shelters[idx].session, path)

    @rule(i=st.integers(0, 4))
    def take_backup(self, i: int) -> None:
        idx = i % len(self.shelters)
        dest = self._file(".bak")
        src, dst = connect_file(self.shelters[idx].path), connect_file(dest, like=self.shelters[idx].path)
        src.backup(dst)
        src.close()
        dst.close()
        self.backups[idx] = dest

    @precondition(lambda self: bool(self.backups))
    @rule(pick=st.integers(0, 4))
    def restore_from_backup(self, pick: int) -> None:
        """The laptop died; a new one gets yesterday's backup (and, as `anpi restore` does, a
        provisional epoch until the hub grants one)."""
        idx = sorted(self.backups)[pick % len(self.backups)]
        sh = self.shelters[idx]
        sh.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(str(sh.path) + suffix).unlink(missing_ok=True)
        shutil.copy(self.backups[idx], sh.path)
        sh.reopen()
        with sh.session() as s:
            outbox.start_new_epoch(s, restored=True)
            s.commit()

    @rule(i=st.integers(0, 4), hours=st.sampled_from([-48, -9, -1, 1, 9, 72]))
    def clock_jump(self, i: int, hours: int) -> None:
        self.shelters[i % len(self.shelters)].clock_offset += hours * 3600

    @rule(hours=st.sampled_from([-2, 2]))
    def hub_clock_jump(self, hours: int) -> None:
        self.hub_offset += hours * 3600

    # ---- invariants ----------------------------------------------------------------------------------
    @invariant()
    def acknowledged_is_on_the_hub(self) -> None:
        if not self.shelters:
            return
        held = hub_ids(self.hub)
        for sh in self.shelters:
            local = sh.local_events()
            for eid in sh.acked_ids():
                self.ever_acked[eid] = local[eid]
        missing = {k for k, v in self.ever_acked.items() if held.get(k) != v}
        assert not missing, f"acknowledged events lost or altered on the hub: {sorted(missing)[:5]}"

    @invariant()
    def local_streams_are_gap_free(self) -> None:
        for sh in self.shelters:
            with sh.engine.connect() as c:
                rows = c.execute(text("select epoch, count(*), max(seq) from outbox_event group by epoch")).all()
            for epoch, n, mx in rows:
                assert n == mx, f"{sh.name} epoch {epoch}: {n} events but max seq {mx}"

    # ---- final convergence -------------------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            if self.shelters:
                self.final_checks()
        finally:
            self.tc.close()
            self.hub.dispose()
            for sh in self.shelters:
                sh.engine.dispose()
            if self.schema:
                drop_pg_schema(self.schema)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def final_checks(self) -> None:
        self.late_delivery()
        for _ in range(2):  # second round: everyone pulls what the others pushed last
            for sh in self.shelters:
                res = sync(sh, self.tc)
                assert res.ok, res.as_dict()
        held = hub_ids(self.hub)
        union: dict[str, tuple[str, int, int, str]] = {}
        for sh in self.shelters:
            with sh.session() as s:
                assert outbox.pending_count(s) == 0
            union.update(sh.local_events())
            assert sh.integrity() == "ok"
        assert set(union) <= set(held), "a laptop's event never reached the hub"
        assert all(held[k] == v for k, v in union.items()), "hub holds different content"
        assert all(self.ever_appended.get(k) == v for k, v in held.items()), "hub holds an event nobody wrote"
        assert all(held.get(k) == v for k, v in self.ever_acked.items())
        st_ = store.status(self.hub)
        assert st_["forks"] == 0 and st_["events"] == len(held)
        with self.hub.connect() as c:
            hub_seqs = sorted(int(r[0]) for r in c.execute(select(store.hub_event.c.hub_seq)))
            streams = c.execute(select(store.hub_stream)).mappings().all()
        assert hub_seqs == list(range(1, len(held) + 1))
        for srow in streams:  # the hub's gap-free watermark covers everything it holds
            assert srow["contiguous_seq"] == srow["max_seq"]
        # the feed keeps evacuees' health and contact items at the hub: an edit of only those is
        # never forwarded (store.redact_for_feed), so no laptop pulls it
        with self.hub.connect() as c:
            unserved = {r[0] for r in c.execute(select(store.hub_event.c.event_id, store.hub_event.c.type,
                                                       store.hub_event.c.payload, store.hub_event.c.payload_sha256))
                        if store.redact_for_feed(r[1], r[2], r[3]) is None}
        for sh in self.shelters:
            me = sh.device().device_id
            others = {k for k, v in held.items() if v[0] != me} - unserved
            assert sh.remote_ids() == others, f"{sh.name} did not pull exactly the other shelters' events"


# ANPI_SIM_EXAMPLES=200 for a longer soak; the default keeps the suite within its time budget
SETTINGS = settings(max_examples=int(os.environ.get("ANPI_SIM_EXAMPLES", "40")), stateful_step_count=30,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large], print_blob=True)


@pytest.mark.postgres
@pytest.mark.slow
def test_simulation_postgres_hub() -> None:
    require_pg()
    SyncWorld.TestCase.settings = SETTINGS
    SyncWorld.TestCase().runTest()


class SqliteSyncWorld(SyncWorld):
    backend = "sqlite"


def test_simulation_sqlite_hub() -> None:
    SqliteSyncWorld.TestCase.settings = settings(SETTINGS, max_examples=max(4, SETTINGS.max_examples // 3))
    SqliteSyncWorld.TestCase().runTest()
