"""Outbox: gap-free numbering per stream, rollback, lazy identity, epochs, immutability."""
from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from sync import events as ev, outbox
from sync.canonical import sha256_hex
from tests.sync.helpers import make_shelter, sqlite_engine
from sqlmodel import Session


def reg(i: int) -> ev.EvacueeRegistered:
    return ev.EvacueeRegistered(evacuee_id=f"E{i}", shelter_code="S1", name=f"避難者{i}")


def seqs(engine) -> list[tuple[int, int]]:  # noqa: ANN001
    with engine.connect() as c:
        return [(r[0], r[1]) for r in c.execute(text("select epoch, seq from outbox_event order by epoch, seq"))]


def test_append_numbers_gap_free_and_stores_hash(tmp_path: Path) -> None:
    sh = make_shelter(tmp_path, "s")
    with sh.session() as s:
        assert outbox.get_device(s) is None
        rows = [outbox.append(s, reg(i)) for i in range(5)]
        s.commit()
        dev = outbox.get_device(s)
        assert dev is not None and dev.epoch == 1 and len(dev.device_id) == 26
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert all(r.payload_sha256 == sha256_hex(r.payload) for r in rows)
        assert len({r.event_id for r in rows}) == 5
        assert outbox.pending_count(s) == 5
        assert outbox.last_sync(s) is None


def test_append_does_not_commit_and_rollback_returns_number(tmp_path: Path) -> None:
    sh = make_shelter(tmp_path, "s")
    with sh.session() as s:
        outbox.append(s, reg(1))
        s.commit()
    with sh.session() as s:
        outbox.append(s, reg(2))
        outbox.append(s, reg(3))
        s.rollback()  # the service's transaction failed: its events must vanish with it
    with sh.session() as s:
        assert outbox.append(s, reg(4)).seq == 2
        s.commit()
    with sh.session() as s:  # append without commit is invisible after close
        outbox.append(s, reg(5))
    assert seqs(sh.engine) == [(1, 1), (1, 2)]


def test_new_epoch_restarts_numbering_and_keeps_old_pending(tmp_path: Path) -> None:
    sh = make_shelter(tmp_path, "s")
    with sh.session() as s:
        for i in range(3):
            outbox.append(s, reg(i))
        s.commit()
        assert outbox.start_new_epoch(s) == 2
        assert outbox.append(s, reg(9)).seq == 1
        s.commit()
        assert [(e.epoch, e.seq) for e in outbox.pending_events(s)] == [(1, 1), (1, 2), (1, 3), (2, 1)]


def test_events_are_immutable_in_the_database(tmp_path: Path) -> None:
    sh = make_shelter(tmp_path, "s")
    with sh.session() as s:
        outbox.append(s, reg(1))
        s.commit()
    with sh.engine.begin() as c:
        c.execute(text("update outbox_event set acked_at = '2025-01-01'"))  # allowed
    for stmt in ("update outbox_event set payload = '{}'", "update outbox_event set seq = 7",
                 "delete from outbox_event"):
        with pytest.raises((IntegrityError, DBAPIError)):
            with sh.engine.begin() as c:
                c.execute(text(stmt))


def test_concurrent_threads_never_duplicate_or_skip(tmp_path: Path) -> None:
    sh = make_shelter(tmp_path, "s")
    with sh.session() as s:
        outbox.ensure_device(s)
        s.commit()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(40):
                with Session(sh.engine) as s:
                    outbox.append(s, reg(k * 1000 + i))
                    if i % 7 == 3:
                        s.rollback()
                    else:
                        s.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errors
    got = [q for _, q in seqs(sh.engine)]
    assert got == list(range(1, len(got) + 1))
    assert len(got) == 4 * (40 - 6)


def _proc_worker(path: str, k: int, n: int) -> None:
    eng = sqlite_engine(Path(path))
    for i in range(n):
        with Session(eng) as s:
            outbox.append(s, reg(k * 10000 + i))
            s.commit()


def test_concurrent_processes_share_one_gap_free_stream(tmp_path: Path) -> None:
    sh = make_shelter(tmp_path, "s")
    with sh.session() as s:
        outbox.ensure_device(s)
        s.commit()
    ctx = mp.get_context("spawn")
    ps = [ctx.Process(target=_proc_worker, args=(str(sh.path), k, 60)) for k in range(3)]
    [p.start() for p in ps]
    [p.join(60) for p in ps]
    assert all(p.exitcode == 0 for p in ps)
    assert [q for _, q in seqs(sh.engine)] == list(range(1, 181))
    assert sh.integrity() == "ok"
