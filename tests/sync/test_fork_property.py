"""Property (issue 18): no event is ever acknowledged that the hub did not store.

A Hypothesis state machine copies shelter databases (a plain file copy: two laptops, one device
id, one stream), records different events on each copy, and delivers them every way a laptop can:
online through a transport that drops requests, loses replies, answers 500, replays signed requests
and holds some back to deliver them late; and on USB bundles whose receipts come back late, twice
or never.  HQ applies the kept forks at random moments.  The hub runs in-process (its ASGI app
through httpx) on SQLite, and on PostgreSQL in the second test.

After every step: every event any laptop marks delivered is stored on the hub with the same content
(by event id and SHA-256), and every event the hub ever answered "fork" is kept in ``hub_fork``.
At the end, HQ applies what is left, every laptop syncs, and everything every laptop holds is on
the hub exactly once with nothing pending.
"""
from __future__ import annotations

import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select

from sync import bundles, outbox
from sync.errors import BundleAlreadyImported, BundleError
from sync.hub import bundles as hub_bundles, forks, server, store
from tests.sync.conftest import drop_pg_schema, new_pg_schema, require_pg
from tests.sync.helpers import (
    Shelter, append_events, enroll_shelter, faulty_client, make_shelter, random_events, sqlite_engine, sync,
)

FAULTS = ["ok", "ok", "drop_request", "drop_reply", "error500", "duplicate", "delay"]


class ForkWorld(RuleBasedStateMachine):
    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="anpi-fork-"))
        self.schema: str | None = None
        if self.backend == "postgres":
            self.schema, url = new_pg_schema()
        else:
            url = f"sqlite:///{self.tmp / 'hub.db'}"
        self.app = server.create_hub_app(url, clock=time.time)
        self.hub = self.app.state.engine
        self.tc = TestClient(self.app, base_url="http://hub")
        self.laptops: list[Shelter] = []
        self.rng = random.Random(0)
        self.bundles: list[tuple[int, Path]] = []
        self.receipts: list[tuple[int, Path]] = []
        self.limbo: list[Any] = []
        self.n_files = 0

    @initialize(n=st.integers(1, 2), seed=st.integers(0, 2**16))
    def setup(self, n: int, seed: int) -> None:
        self.rng = random.Random(seed)
        for i in range(n):
            sh = make_shelter(self.tmp, f"s{i}")
            append_events(sh, random_events(self.rng, sh, 3))
            enroll_shelter(sh, self.hub, self.tc)
            self.laptops.append(sh)
        self.copy_database(0)  # IT staff prepared a second laptop from the first one's file

    def _file(self, suffix: str) -> Path:
        self.n_files += 1
        return self.tmp / f"f{self.n_files}{suffix}"

    def _pick(self, i: int) -> tuple[int, Shelter]:
        idx = i % len(self.laptops)
        return idx, self.laptops[idx]

    # ---- rules ---------------------------------------------------------------------------------------
    @precondition(lambda self: len(self.laptops) < 5)
    @rule(i=st.integers(0, 9))
    def copy_database(self, i: int) -> None:
        """`cp shelter.db other-laptop.db` (consistent copy): same device id, same stream."""
        _, src = self._pick(i)
        dest = self._file(".db")
        a, b = sqlite3.connect(src.path), sqlite3.connect(dest)
        a.backup(b)
        a.close()
        b.close()
        sh = Shelter(f"copy{self.n_files}", dest, sqlite_engine(dest), evacuees=list(src.evacuees))
        self.laptops.append(sh)

    @rule(i=st.integers(0, 9), k=st.integers(1, 12), everywhere=st.booleans())
    def record(self, i: int, k: int, everywhere: bool) -> None:
        for _, sh in [self._pick(j) for j in range(len(self.laptops))] if everywhere else [self._pick(i)]:
            append_events(sh, random_events(self.rng, sh, k))

    @rule(i=st.integers(0, 9), plan=st.lists(st.sampled_from(FAULTS), max_size=5), batch=st.sampled_from([2, 7, 500]))
    def sync_unreliably(self, i: int, plan: list[str], batch: int) -> None:
        _, sh = self._pick(i)
        http, t = faulty_client(self.tc, plan)
        sync(sh, http, batch_size=batch, max_retries=1)
        self.limbo.extend(t.limbo)

    @rule(k=st.integers(1, 6), plan=st.lists(st.sampled_from(FAULTS), max_size=4), order=st.randoms())
    def everyone_records_then_syncs(self, k: int, plan: list[str], order: random.Random) -> None:
        """The common day: every laptop registers people, then each syncs (in some order)."""
        for sh in self.laptops:
            append_events(sh, random_events(self.rng, sh, k))
        for sh in order.sample(self.laptops, len(self.laptops)):
            http, t = faulty_client(self.tc, list(plan))
            sync(sh, http, batch_size=order.choice([3, 500]), max_retries=1)
            self.limbo.extend(t.limbo)

    @rule()
    def late_delivery(self) -> None:
        """Held-back requests arrive now, in random order (replays of pushes the laptop gave up on)."""
        self.rng.shuffle(self.limbo)
        while self.limbo:
            self.tc.send(self.limbo.pop())

    @rule(i=st.integers(0, 9))
    def export_bundle(self, i: int) -> None:
        idx, sh = self._pick(i)
        try:
            info = bundles.export_bundle(sh.session, self._file(".anpi"))
        except BundleError:
            return  # nothing pending
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

    @precondition(lambda self: bool(self.receipts))
    @rule(pick=st.integers(0, 50), again=st.booleans())
    def carry_receipt_home(self, pick: int, again: bool) -> None:
        idx, path = self.receipts[pick % len(self.receipts)]
        if not again:
            self.receipts.remove((idx, path))
        if path.exists():
            bundles.import_receipt(self.laptops[idx].session, path)

    @rule()
    def hq_applies_forks(self) -> None:
        forks.apply_forks(self.hub, None, by="hq")

    # ---- invariants ------------------------------------------------------------------------------------
    def _held(self) -> set[tuple[str, str]]:
        return {(r[3], r[4]) for r in store.held_events(self.hub)}

    @invariant()
    def nothing_acknowledged_that_the_hub_did_not_store(self) -> None:
        held = self._held()
        for sh in self.laptops:
            local = sh.local_events()
            wrong = [eid for eid in sh.acked_ids() if (eid, local[eid][3]) not in held]
            assert not wrong, f"{sh.name}: acknowledged but not stored on the hub: {wrong[:5]}"

    @invariant()
    def every_fork_answer_is_kept(self) -> None:
        with self.hub.connect() as c:
            kept = {(r[0], r[1]) for r in c.execute(select(store.hub_fork.c.incoming_event_id,
                                                           store.hub_fork.c.incoming_sha256))}
        held = self._held()
        for sh in self.laptops:
            local = sh.local_events()
            for eid, (_, _, _, sha) in local.items():
                assert (eid, sha) in held or (eid, sha) in kept or eid not in sh.acked_ids()

    # ---- the end -------------------------------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            if self.laptops:
                self.final_checks()
        finally:
            self.tc.close()
            self.hub.dispose()
            for sh in self.laptops:
                sh.engine.dispose()
            if self.schema:
                drop_pg_schema(self.schema)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def final_checks(self) -> None:
        self.late_delivery()
        for sh in self.laptops:
            sync(sh, self.tc)  # forks reach the hub
        forks.apply_forks(self.hub, None, by="hq")
        for sh in self.laptops:
            res = sync(sh, self.tc)
            assert res.ok, res.as_dict()
            with sh.session() as s:
                assert outbox.pending_count(s) == 0
                assert outbox.sync_health(s)["forked"] == 0
        held = store.held_events(self.hub)
        counts = Counter(r[3] for r in held)
        assert all(n == 1 for n in counts.values()), "an event stored twice"
        by_id = {r[3]: r[4] for r in held}
        for sh in self.laptops:
            for eid, (_, _, _, sha) in sh.local_events().items():
                assert by_id.get(eid) == sha, f"{sh.name}: {eid} not on the hub as written"
        st_ = store.status(self.hub)
        assert st_["review_items"] == 0 or st_["review_items"] == _field_conflicts(self.hub)


def _field_conflicts(engine: Any) -> int:
    with engine.connect() as c:
        return int(c.exec_driver_sql("select count(*) from hub_review_item where status = 'open'").scalar_one())


SETTINGS = settings(max_examples=int(os.environ.get("ANPI_FORK_EXAMPLES", "10")), stateful_step_count=30,
                    deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])


def test_no_event_acknowledged_that_the_hub_did_not_store_sqlite_hub() -> None:
    ForkWorld.TestCase.settings = SETTINGS
    ForkWorld.TestCase().runTest()


class PgForkWorld(ForkWorld):
    backend = "postgres"


@pytest.mark.postgres
@pytest.mark.slow
def test_no_event_acknowledged_that_the_hub_did_not_store_postgres_hub() -> None:
    require_pg()
    PgForkWorld.TestCase.settings = settings(SETTINGS, max_examples=max(4, SETTINGS.max_examples // 2))
    PgForkWorld.TestCase().runTest()
