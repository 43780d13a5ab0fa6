"""`anpi status`: the few numbers a shelter lead or HQ asks for first (ARCHITECTURE.md §2)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from app.services import journal
from app.services.registry import newest_snapshot, resident_count

# The newest decision per evacuee decides how that evacuee counts.
_DECISIONS_SQL = text("""
    SELECT d.decision, COUNT(*) FROM matchdecision d
    JOIN (SELECT evacuee_id, MAX(at || id) AS k FROM matchdecision GROUP BY evacuee_id) last
      ON last.evacuee_id = d.evacuee_id AND last.k = d.at || d.id
    GROUP BY d.decision
""")


def shelter_status(session: Session) -> dict[str, Any]:
    snap = newest_snapshot(session)
    snapshot = None
    if snap is not None:
        snapshot = {"id": snap.id, "as_of": snap.as_of.isoformat(), "residents": resident_count(session, snap.id),
                    "source_file": snap.source_file, "sha256": snap.sha256,
                    # rows left out by --quarantine-bad-rows: the snapshot is incomplete when > 0
                    "quarantined": snap.quarantined, "complete": not snap.quarantined}
    total, in_shelter = session.exec(text(  # type: ignore[call-overload]
        "SELECT COUNT(*), COALESCE(SUM(status = 'in_shelter'), 0) FROM evacuee")).one()
    decisions = {"auto": 0, "review": 0, "none": 0, "confirmed": 0}
    for decision, n in session.exec(_DECISIONS_SQL):  # type: ignore[call-overload]
        if decision in decisions:
            decisions[decision] += n
        elif decision in ("rejected", "not_resident"):
            decisions["none"] += n
    last_sync = journal.last_sync(session)
    flags_open, flagged = session.exec(text(  # type: ignore[call-overload]
        "SELECT COUNT(*), COUNT(DISTINCT evacuee_id) FROM rosterflag WHERE kind = 'flag' AND status = 'open'")).one()
    running = session.exec(text("SELECT COUNT(*) FROM rosterimport WHERE status = 'running'")).one()[0]  # type: ignore[call-overload]
    return {
        "snapshot": snapshot,
        "evacuees": {"total": total, "in_shelter": in_shelter, "left": total - in_shelter},
        "decisions": decisions,
        "last_sync": last_sync.isoformat() if last_sync else None,
        "pending_events": journal.pending_count(session),
        # cells of imported roster rows kept as typed, for staff to check (issue 14 item 12)
        "flags": {"open": flags_open, "evacuees": flagged},
        "roster_imports_unfinished": running,
        "sync": journal.sync_health(session),
        "sync_link": journal.pending_link(session),  # bytes and estimated time at the last link speed (issue 16)
    }
