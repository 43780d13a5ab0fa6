"""The hub's PostgreSQL replication, as the hub sees it: its role, its standbys, its WAL archive.

PostgreSQL does the replicating (streaming replication to a synchronous standby, WAL archiving,
point-in-time recovery; see README "Hub high availability"); nothing here copies data.  This
module only *reads* the server's own views so that

- ``anpi hub status --json`` can say whether this node is the primary or a standby, how far the
  standby lags, which WAL segment was archived last, and whether an acknowledgement to a laptop
  waits for the standby (``acks_synchronous``) or rests on the primary alone;
- the hub's HTTP face can answer a write that reaches a standby with a clear refusal
  (:func:`is_read_only_error` → ``503 {"error": "hub_read_only"}``) so laptops move on to the
  next hub URL they hold (:mod:`sync.failover`).

A SQLite hub (one-laptop HQ) has no replication: it reports itself as a primary without standby.
The detail views (``pg_stat_replication``, ``pg_stat_archiver``) need the ``pg_monitor`` role;
a hub role without it sees ``null`` there, never an error.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

#: SQLSTATE of "cannot execute … in a read-only transaction" (a standby, or default_transaction_read_only)
READ_ONLY_SQLSTATE = "25006"
#: answered to a write that reached a standby (the client moves on to the next hub URL)
READ_ONLY_ERROR = "hub_read_only"
#: synchronous_commit levels at which a commit on the primary waits for the synchronous standby
_WAITS_FOR_STANDBY = ("on", "remote_write", "remote_apply")
#: the levels below "on" that the hub raises for its own write transactions (local durability first)
DURABLE_COMMIT_SQL = ("SELECT set_config('synchronous_commit', 'on', true) "
                      "WHERE current_setting('synchronous_commit') IN ('off', 'local')")


def is_read_only_error(exc: BaseException) -> bool:
    """True for a database error that says "this server accepts no writes" (a standby)."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) == READ_ONLY_SQLSTATE


def _one(conn: Connection, sql: str) -> Any:
    try:
        with conn.begin_nested():
            return conn.execute(text(sql)).first()
    except Exception:  # noqa: BLE001 - a view we may not read (no pg_monitor) or an older server
        return None


def _primary_view(conn: Connection) -> dict[str, Any]:
    names = conn.execute(text("SELECT current_setting('synchronous_standby_names')")).scalar_one()
    level = conn.execute(text("SELECT current_setting('synchronous_commit')")).scalar_one()
    standbys: list[dict[str, Any]] = []
    try:
        with conn.begin_nested():
            rows = conn.execute(text(
                "SELECT application_name, state, sync_state, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes, "
                "EXTRACT(EPOCH FROM replay_lag) AS lag_seconds FROM pg_stat_replication")).mappings().all()
        standbys = [{"name": r["application_name"], "state": r["state"], "sync_state": r["sync_state"],
                     "lag_bytes": None if r["lag_bytes"] is None else int(r["lag_bytes"]),
                     "lag_seconds": None if r["lag_seconds"] is None else round(float(r["lag_seconds"]), 3)}
                    for r in rows]
    except Exception:  # noqa: BLE001 - no pg_monitor: standbys unknown
        standbys = []
    streaming_sync = [s for s in standbys if s["state"] == "streaming" and s["sync_state"] in ("sync", "quorum")]
    configured = bool(str(names).strip()) and level in _WAITS_FOR_STANDBY
    lags = [s["lag_seconds"] for s in streaming_sync if s["lag_seconds"] is not None]
    return {
        "role": "primary",
        "synchronous_standby_names": names,
        "synchronous_commit": level,
        # PostgreSQL itself holds every commit until a synchronous standby has flushed it: with
        # a configured standby name an ack waits for it (and waits while it is away)
        "acks_synchronous": configured,
        "sync_standby_connected": bool(streaming_sync),  # (false too for a role without pg_monitor)
        "standbys": standbys,
        "replication_lag_seconds": max(lags) if lags else None,
        "replication_lag_bytes": max((s["lag_bytes"] or 0 for s in streaming_sync), default=None),
    }


def _standby_view(conn: Connection) -> dict[str, Any]:
    row = _one(conn, "SELECT EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())), "
                     "pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())")
    upstream = _one(conn, "SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver")
    return {
        "role": "standby",
        "acks_synchronous": False,  # a standby acknowledges nothing: it refuses writes
        "upstream": None if upstream is None else {"status": upstream[0], "host": upstream[1], "port": upstream[2]},
        # time since the last replayed commit: grows while the primary is idle, too
        "replication_lag_seconds": None if row is None or row[0] is None else round(float(row[0]), 3),
        "replication_lag_bytes": None if row is None or row[1] is None else int(row[1]),
    }


def replication_status(engine: Engine) -> dict[str, Any]:
    """Role, lag, archive and acknowledgement mode of the hub's database (see module docstring)."""
    if engine.dialect.name != "postgresql":
        return {"role": "primary", "database": engine.dialect.name, "acks_synchronous": False,
                "standbys": [], "replication_lag_seconds": None, "last_archived_wal": None,
                "note": "no replication (SQLite hub): acknowledgements rest on this machine alone"}
    with engine.connect() as conn:
        in_recovery = bool(conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one())
        out = _standby_view(conn) if in_recovery else _primary_view(conn)
        archiver = _one(conn, "SELECT last_archived_wal, last_archived_time, failed_count, last_failed_wal "
                              "FROM pg_stat_archiver")
        mode = _one(conn, "SELECT current_setting('archive_mode')")
        conn.rollback()
    out["database"] = "postgresql"
    out["archive_mode"] = mode[0] if mode else None
    out["last_archived_wal"] = archiver[0] if archiver else None
    out["last_archived_at"] = archiver[1].isoformat() if archiver and archiver[1] else None
    out["archive_failures"] = int(archiver[2]) if archiver else None
    if out["role"] == "primary" and not out["acks_synchronous"]:
        out["note"] = "running without a synchronous standby: acknowledgements rest on the primary alone"
    return out


def role(engine: Engine) -> str:
    """``primary`` or ``standby`` (a SQLite hub is always ``primary``)."""
    if engine.dialect.name != "postgresql":
        return "primary"
    with engine.connect() as conn:
        return "standby" if conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() else "primary"
