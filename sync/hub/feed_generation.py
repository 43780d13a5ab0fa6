"""The hub feed's *generation*: which numbering a laptop's pull cursor belongs to.

Why: the feed numbers (``hub_seq``, per municipality, :func:`sync.hub.store.next_hub_seq`) are
``max + 1`` over what the database holds.  A point-in-time restore (``anpi hub restore``) brings
back a database that has forgotten the items numbered after the target, so the restored hub hands
those numbers out again to *different* items.  A laptop that had pulled past the restore point
would then skip them (its cursor is already past them), and could not even store them (its
``remote_event`` is keyed on ``hub_seq``).  No floor the hub could add to its numbers is provably
above every cursor a laptop holds: what was numbered after the target is exactly what the restored
database does not know.

So every pull answer carries ``generation`` (a random positive 62-bit integer), and a laptop whose
stored generation differs forgets what it pulled and pulls the feed again from 0
(:func:`sync.client._pull`).  Within one generation, numbers only grow and never name two items.

When the generation changes: the value is stored in ``hub_meta`` (hub-wide row ``feed_generation``)
together with the *origin* it was made on — PostgreSQL's system identifier and the timeline WAL is
being written on.  A restore always ends with a promotion to a timeline newer than any the restored
data was written on (PostgreSQL picks the newest timeline + 1), and so does a standby's promotion;
the row written before can therefore never name the new origin, and the first pull answered after a
restore or a failover rolls a new random generation (compare-and-set: concurrent pulls agree).  A
logical copy into another cluster changes the system identifier and rolls too.  A failover loses
nothing, so there the re-pull is only a cost (one full feed per laptop, once) — it cannot be told
apart from a restore, and being sure is worth it.  A standby (in recovery) never writes: it answers
with the stored generation, which is the one of the numbering it replays.
"""
from __future__ import annotations

import secrets

from sqlalchemy import select, text, update
from sqlalchemy.engine import Connection, Engine

from sync.hub.store import _insert, hub_meta

KEY = "feed_generation"


def feed_origin(conn: Connection) -> str | None:
    """What a restore or a promotion changes: ``"<system identifier>/<timeline>"`` on PostgreSQL
    (``None`` on a standby, which never rolls), a constant on a SQLite hub (never restored this way)."""
    if conn.dialect.name != "postgresql":
        return "sqlite"
    if conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one():
        return None
    sysid = conn.execute(text("SELECT system_identifier FROM pg_control_system()")).scalar_one()
    wal = conn.execute(text("SELECT pg_walfile_name(pg_current_wal_lsn())")).scalar_one()
    return f"{sysid}/{int(str(wal)[:8], 16)}"


def _stored(conn: Connection) -> str | None:
    return conn.execute(select(hub_meta.c.value).where(hub_meta.c.municipality_code == "",
                                                       hub_meta.c.key == KEY)).scalar_one_or_none()


def _split(value: str | None) -> tuple[str, int]:
    origin, _, gen = (value or "").rpartition(" ")
    return origin, int(gen) if gen.isdigit() else 0


def feed_generation(engine: Engine) -> int | None:
    """The current feed generation, rolled first when the database's origin changed (see the module).

    Call it *before* reading the feed page it labels: a page read after the roll is in the new
    numbering.  ``None`` only on a standby that never saw a generation (the answer then has none,
    and laptops keep their cursor, as with a hub of an earlier release)."""
    with engine.begin() as conn:
        origin = feed_origin(conn)
        value = _stored(conn)
        stored_origin, gen = _split(value)
        if origin is None or (gen and stored_origin == origin):
            return gen or None
        fresh = f"{origin} {secrets.randbits(62) | 1}"
        if value is None:
            conn.execute(_insert(conn, hub_meta).values(municipality_code="", key=KEY, value=fresh)
                         .on_conflict_do_nothing())
        else:  # compare-and-set: of two pulls rolling at once, one wins and both answer with it
            conn.execute(update(hub_meta).where(hub_meta.c.municipality_code == "", hub_meta.c.key == KEY,
                                                hub_meta.c.value == value).values(value=fresh))
    with engine.connect() as conn:
        return _split(_stored(conn))[1] or None
