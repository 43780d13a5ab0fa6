"""Test helpers: shelters as real SQLite files, a hub in-process, event generators, faults."""
from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session
from ulid import ULID

from sync import client, events as ev, models, outbox
from sync.hub import store


def connect_file(path: Path | str, like: Path | str | None = None) -> Any:
    """A DB-API connection to a shelter file: plain (make_shelter) or encrypted (make_app_shelter,
    keyed from ANPI_PASSPHRASE); a file that does not exist yet is made like `like` (a backup of it)."""
    from app.db_crypto import connect, is_plain_sqlite

    return connect(path, None if is_plain_sqlite(like if like is not None else path) else "")


def sqlite_engine(path: Path) -> Engine:
    """Same pragmas the lead's app/db.py promises (WAL, synchronous=FULL, foreign keys)."""
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    models.create_all(engine)
    return engine


@dataclass
class Shelter:
    name: str
    path: Path
    engine: Engine
    code: str = ""
    clock_offset: float = 0.0
    evacuees: list[str] = field(default_factory=list)

    def session(self) -> Session:
        return Session(self.engine)

    def clock(self) -> float:
        return time.time() + self.clock_offset

    def reopen(self) -> None:
        from app import db, db_crypto

        self.engine.dispose()
        # an app shelter (make_app_shelter) is encrypted: reopen it keyed, as the CLI does
        self.engine = sqlite_engine(self.path) if db_crypto.is_plain_sqlite(self.path) else db.sqlite_engine(self.path)

    def device(self) -> models.SyncDevice:
        with self.session() as s:
            d = outbox.get_device(s)
            assert d is not None
            s.expunge(d)
            return d

    def local_events(self) -> dict[str, tuple[str, int, int, str]]:
        with self.engine.connect() as c:
            return {r[0]: (r[1], int(r[2]), int(r[3]), r[4]) for r in c.execute(text(
                "select event_id, device_id, epoch, seq, payload_sha256 from outbox_event")).all()}

    def acked_ids(self) -> set[str]:
        with self.engine.connect() as c:
            return {r[0] for r in c.execute(text("select event_id from outbox_event where acked_at is not null"))}

    def remote_ids(self) -> set[str]:
        with self.engine.connect() as c:
            return {r[0] for r in c.execute(text("select event_id from remote_event"))}

    def integrity(self) -> str:
        con = connect_file(self.path)
        try:
            return con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()


def make_shelter(tmp: Path, name: str) -> Shelter:
    p = tmp / f"{name}.db"
    return Shelter(name, p, sqlite_engine(p))


def make_app_shelter(tmp: Path, name: str) -> Shelter:
    """A shelter file created exactly as the CLI creates it (the lead's migrations when present)."""
    p = tmp / f"{name}.db"
    try:
        from app.db import open_shelter_db
    except ImportError:
        return Shelter(name, p, sqlite_engine(p))
    engine = open_shelter_db(p)
    models.create_all(engine)
    return Shelter(name, p, engine)


def random_events(rng: random.Random, shelter: Shelter, n: int) -> list[ev.EventPayload]:
    """A plausible mix: registrations, stays, decisions, edits, consents, certificates."""
    out: list[ev.EventPayload] = []
    for _ in range(n):
        r = rng.random()
        now = "2025-01-%02dT%02d:%02d:00+09:00" % (rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59))
        if r < 0.4 or not shelter.evacuees:
            eid = str(ULID())
            shelter.evacuees.append(eid)
            out.append(ev.EvacueeRegistered(
                evacuee_id=eid, shelter_code=shelter.name, external_key=str(rng.randint(1, 999)),
                name=rng.choice(["山田 太郎", "髙橋 花子", "佐藤 一郎", "YAMADA Taro"]), name_kana="ヤマダ タロウ",
                birth_date_raw="S45.3.1", birth_date="1970-03-01", sex=rng.choice(["1", "2"]),
                address="宮城県石巻市", phone="090-0000-0000", household_key="H1",
                care={"wheelchair": rng.random() < 0.1}, consents={"share": True}, registered_at=now,
                extra={"future_field": {"nested": [1, 2]}} if rng.random() < 0.1 else {}))
        elif r < 0.7:
            out.append(ev.StayRecorded(stay_id=str(ULID()), evacuee_id=rng.choice(shelter.evacuees),
                                       kind=rng.choice(["check_in", "check_out", "transfer"]), at=now,
                                       destination="第二中学校", shelter_code=shelter.name))
        elif r < 0.85:
            d = rng.choice(["auto", "review", "none", "confirmed", "rejected"])
            rid = None if d == "none" else f"R{rng.randint(1, 30)}"
            out.append(ev.MatchDecided(decision_id=str(ULID()), evacuee_id=rng.choice(shelter.evacuees),
                                       resident_id=rid, decision=d, at=now, snapshot_as_of="2024-12-31",
                                       score=round(rng.random(), 3), reasons="kana=exact", by_user="staff1"))
        elif r < 0.93:
            out.append(ev.EvacueeUpdated(evacuee_id=rng.choice(shelter.evacuees),
                                         changes={"phone": {"old": "090-0000-0000", "new": f"080-{rng.randint(0, 9999):04d}"}},
                                         at=now))
        elif r < 0.97:
            out.append(ev.ConsentChanged(evacuee_id=rng.choice(shelter.evacuees), consents={"share": rng.random() < .5},
                                         at=now))
        else:
            out.append(ev.CertificateIssued(number=f"{shelter.name}-{ULID()}", kind="risai", resident_id="R1",
                                            household_id="H1", issued_at=now))
    return out


def append_events(shelter: Shelter, items: list[ev.EventPayload]) -> list[str]:
    with shelter.session() as s:
        rows = [outbox.append(s, e) for e in items]
        ids = [r.event_id for r in rows]
        s.commit()
    return ids


def enroll_shelter(shelter: Shelter, hub_engine: Engine, http: httpx.Client, base_url: str = "http://hub") -> None:
    slot = store.create_enrolment(hub_engine, shelter.name)
    shelter.code = slot.code
    client.enroll(shelter.session, base_url, slot.code, shelter.name, http=http)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """uvicorn serving an ASGI app in a thread on 127.0.0.1 (real sockets, in-process)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        deadline = time.time() + 15
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class FaultTransport(httpx.BaseTransport):
    """Wraps an in-process hub (a TestClient) and injects network faults by schedule.

    ``plan`` is consumed one entry per request: ``ok``; ``drop_request`` (never reaches the
    hub); ``drop_reply`` (hub processes and commits, the reply is lost); ``error500``;
    ``delay`` (held back, delivered later by ``release`` — reordering); ``duplicate`` (the
    same signed request delivered twice; the second must be refused as a replay).
    """

    def __init__(self, inner: httpx.Client, plan: list[str] | None = None) -> None:
        self.inner = inner
        self.plan = list(plan or [])
        self.limbo: list[httpx.Request] = []
        self.delivered: list[httpx.Request] = []
        self.log: list[tuple[str, int | None]] = []

    def _send(self, request: httpx.Request) -> httpx.Response:
        request.read()
        fwd = httpx.Request(request.method, request.url, headers=request.headers, content=request.content)
        resp = self.inner.send(fwd)
        self.delivered.append(fwd)
        return httpx.Response(resp.status_code, headers={"content-type": resp.headers.get("content-type", "")},
                              content=resp.content, request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        mode = self.plan.pop(0) if self.plan else "ok"
        if mode == "drop_request":
            self.log.append((mode, None))
            raise httpx.ConnectError("injected: connection refused", request=request)
        if mode == "delay":
            request.read()
            self.limbo.append(httpx.Request(request.method, request.url, headers=request.headers,
                                            content=request.content))
            self.log.append((mode, None))
            raise httpx.ReadTimeout("injected: request held back", request=request)
        if mode == "error500":
            self.log.append((mode, 500))
            return httpx.Response(500, content=b"injected", request=request)
        resp = self._send(request)
        if mode == "duplicate":
            again = self.inner.send(self.delivered[-1])
            self.log.append(("duplicate-second", again.status_code))
            if resp.status_code < 400:  # an accepted request must never be accepted twice
                assert again.status_code == 401 and again.json()["error"] == "replayed_nonce", again.text
            else:
                assert again.status_code >= 400, again.text
        if mode == "drop_reply":
            self.log.append((mode, resp.status_code))
            raise httpx.ReadError("injected: connection reset before reply", request=request)
        self.log.append((mode, resp.status_code))
        return resp

    def release(self) -> list[int]:
        """Deliver held-back requests now (late, out of order).  Returns their statuses."""
        out = []
        while self.limbo:
            req = self.limbo.pop(random.randrange(len(self.limbo)))
            out.append(self.inner.send(req).status_code)
        return out


def faulty_client(inner: httpx.Client, plan: list[str] | None = None) -> tuple[httpx.Client, FaultTransport]:
    t = FaultTransport(inner, plan)
    return httpx.Client(transport=t, base_url="http://hub"), t


def no_sleep(_: float) -> None:
    return None


def sync(shelter: Shelter, http: httpx.Client, **kw: Any) -> client.SyncResult:
    kw.setdefault("sleep", no_sleep)
    kw.setdefault("clock", shelter.clock)
    return client.sync_once(shelter.session, **{"http": http, **kw})


def hub_ids(engine: Engine) -> dict[str, tuple[str, int, int, str]]:
    return {r[3]: (r[0], r[1], r[2], r[4]) for r in store.held_events(engine)}


Callback = Callable[[], None]
