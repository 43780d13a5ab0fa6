"""本人記入 (self-registration): forms evacuees fill in at the kiosk, waiting for staff at the desk.

Why a queue and not a registration: nobody has checked who typed the form, so it registers no
one. Staff open the entry at the desk, confirm the person's identity and finish intake from it
(every field prefilled); the registration then goes through the one intake path, which matches
against the registry at once. The form is stored as typed (the intake form's field names) and
emptied when finished or discarded, so personal data is not kept twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from app.ids import utcnow
from app.models import SelfEntry
from app.services.errors import NotFound
from app.services.evacuees import local_day_bounds

#: the languages of the kiosk screen (`/self?lang=`); `easy` is やさしい日本語
LANGS = ("ja", "easy", "en", "zh-Hans", "ko", "vi", "pt", "tl", "ne")
LANG_JA = {"ja": "日本語", "easy": "やさしい日本語", "en": "英語", "zh-Hans": "中国語（簡体字）", "ko": "韓国語",
           "vi": "ベトナム語", "pt": "ポルトガル語", "tl": "タガログ語", "ne": "ネパール語"}
MAX_FIELD = 200  # characters kept per typed field (the intake form checks each field's own limit)
MAX_KEYS = 400


def next_ticket(session: Session) -> int:
    """The number the person tells the desk: 1, 2, 3 … counted from the laptop's local midnight."""
    start, _end = local_day_bounds()
    n = session.exec(select(func.count()).select_from(SelfEntry).where(SelfEntry.created_at >= start)).one()
    return int(n) + 1


def submit(session: Session, items: dict[str, str], lang: str) -> SelfEntry:
    """Store one household's form (already checked by the caller) in the caller's transaction."""
    data = {k: str(v)[:MAX_FIELD] for k, v in list(items.items())[:MAX_KEYS] if k != "csrf_token"}
    entry = SelfEntry(ticket=next_ticket(session), lang=lang if lang in LANGS else "ja", data=data)
    session.add(entry)
    session.flush()
    return entry


def waiting(session: Session, *, max_age_hours: int = 72) -> list[SelfEntry]:
    """Entries not yet finished, oldest first (older than `max_age_hours` are left out)."""
    since = utcnow() - timedelta(hours=max_age_hours)
    q = (select(SelfEntry).where(SelfEntry.status == "waiting", SelfEntry.created_at >= since)
         .order_by(SelfEntry.created_at))  # type: ignore[arg-type]
    return list(session.exec(q))


def get_waiting(session: Session, entry_id: str) -> SelfEntry:
    entry = session.get(SelfEntry, entry_id)
    if entry is None or entry.status != "waiting":
        raise NotFound(f"self-registration {entry_id} is not waiting", "この本人記入は見つからないか、受付済みです")
    return entry


def _close(session: Session, entry_id: str, status: str, by: str, household_key: str = "") -> SelfEntry:
    entry = get_waiting(session, entry_id)
    entry.status, entry.closed_by, entry.closed_at = status, by, utcnow()
    entry.household_key = household_key
    entry.data = {}  # the registration (or nobody) holds the person's data from now on
    session.add(entry)
    return entry


def finish(session: Session, entry_id: str, household_key: str, *, by: str) -> SelfEntry:
    """Staff registered the household from this entry (inside the registration's transaction)."""
    return _close(session, entry_id, "done", by, household_key)


def discard(session: Session, entry_id: str, *, by: str) -> SelfEntry:
    """Staff threw the entry away (a duplicate, a test, nobody came to the desk)."""
    return _close(session, entry_id, "discarded", by)


def summary(entry: SelfEntry) -> dict[str, Any]:
    """What the queue list shows of one entry: the first person and how many people."""
    d = entry.data
    people = sorted({int(k.split("-")[1]) for k in d if k.startswith("m-") and k.split("-")[1].isdigit()
                     and any(str(d.get(f"m-{k.split('-')[1]}-{f}", "")).strip() for f in ("name", "name_kana"))})
    first = people[0] if people else 0
    return {"id": entry.id, "ticket": entry.ticket, "lang": LANG_JA.get(entry.lang, entry.lang),
            "name": d.get(f"m-{first}-name", ""), "name_kana": d.get(f"m-{first}-name_kana", ""),
            "birth_date": d.get(f"m-{first}-birth_date", ""), "people": len(people), "created_at": entry.created_at}
