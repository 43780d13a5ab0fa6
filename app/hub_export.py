"""HQ at the hub: one municipality's safety list across every shelter, its files, and HQ records typed there.

The rows are the shelter's own (``app.services.anpi_list``: ``ResidentRecord``, ``ShelterStay``,
``HqRecord``, ``current_hq_records``, ``build_rows``, ``export_table``) and so are the writers
(``app.formats.anpi_list_export``); only the data comes from the hub (``sync.hub.hq.list_inputs``,
``hq_record_rows``): the municipality's newest registry backup (decrypted), where each resident was
found — at its own shelters, or at another town's shelter through a sharing agreement — and every
HQ record (typed on a laptop and synced as ``hq.recorded``, or typed here by :func:`record_hq`).
So a resident has the same status (避難所で確認 / 退所 / 他の手段で確認 / 死亡 / 行方不明 / 未確認) in a
shelter's list and the hub's, and the same filters and order.  HQ's JSON (:func:`list_json`,
``GET /v1/hq/anpi-list``), the files (:func:`export_anpi_list`) and the record history
(:func:`hq_history`) are all built here; ``sync/`` holds no copy of the list's logic (it may not
import ``app/``, ARCHITECTURE.md §8, so the list lives on this side).

Nothing of another municipality is read (every hub query is scoped to the one municipality,
and PostgreSQL's row-level security holds it to that).  閲覧制限 people never reach a file
(``export_table`` drops them and reports only their number).  Exports and records are audited
in the municipality's hub log.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from ulid import ULID

from app.config import Settings
from app.formats.anpi_list_export import ExportResult, ExportTable
from app.services.anpi_list import (
    HQ_STATUS_JA, SAFE, AnpiFilter, AnpiList, AnpiRow, HqRecord, ResidentRecord, ShelterStay, SortedResidents,
    build_rows, check_filters, check_hq_input, current_hq_records, export_table, replay_hq_records, sort_residents,
    write_table,
)
from app.ids import utcnow
from app.services.errors import Conflict, InvalidInput, NotFound
from matching.address import town_key
from sync.errors import DataKeyError, RegistryError
from sync.hub import audit, hq, registry
from sync.hub.hq import parse_time
from sync.hub.registry import DataKey
from sync.events import HqRecorded
from sync.hub.store import (
    hub_hq_record, hub_lock, insert_notices, municipality_names, resolve_municipality, set_tenant,
)

FORMATS = ("csv", "xlsx", "pdf")
ENCODINGS = ("utf-8-sig", "cp932")


@dataclass
class HubExport:
    path: Path
    format: str
    rows: int
    restricted_excluded: int
    municipality_code: str
    safe: int
    result: ExportResult
    summary_path: Path | None = None
    table: ExportTable | None = None


def _date(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def _care(flags: Any) -> tuple[str, ...]:
    from app.services.evacuees import care_labels

    return tuple(care_labels(dict(flags))) if isinstance(flags, dict) and flags else ()


def residents_of(rec: registry.Records) -> list[ResidentRecord]:
    out = []
    for d in registry.iter_rows(rec):
        address = d.get("address") or ""
        out.append(ResidentRecord(
            resident_id=str(d["resident_id"]), household_id=d.get("household_id") or "",
            relationship=d.get("relationship") or "", family_name=d.get("family_name") or "",
            given_name=d.get("given_name") or "", family_name_kana=d.get("family_name_kana") or "",
            given_name_kana=d.get("given_name_kana") or "", alpha_name=d.get("alpha_name") or "",
            birth_date=_date(d.get("birth_date")), birth_raw=d.get("birth_raw") or "", sex=d.get("sex") or "",
            address=address, town=(town_key(address) or "") if address else "", restricted=bool(d.get("restricted"))))
    return out


def shelter_stays(m: str, stays: dict[str, list[dict[str, Any]]]) -> dict[str, list[ShelterStay]]:
    """The hub's stays (``sync.hub.hq.stays_index``) as the shelter's ``ShelterStay``; another
    town's shelter is named with its town (加須市 加須市民体育館)."""
    out: dict[str, list[ShelterStay]] = {}
    for rid, person in stays.items():
        for w in person:
            shelter = w.get("shelter_name") or w.get("shelter_code") or ""
            if w["municipality_code"] != m:
                shelter = f"{w.get('municipality_name') or w['municipality_code']} {shelter}".strip()
            out.setdefault(rid, []).append(ShelterStay(
                shelter=shelter, state=w["state"], since=parse_time(w.get("since")), left_at=parse_time(w.get("left_at")),
                destination=w.get("destination") or "", care=_care(w.get("care")),
                evacuee_id=w.get("evacuee_id") or "", remote=bool(w.get("remote"))))
    return out


def hq_records_of(rows: list[dict[str, Any]]) -> list[HqRecord]:
    return [HqRecord(resident_id=str(r["resident_id"]), status=r["status"], at=parse_time(r["at"]) or datetime.min.replace(
        tzinfo=timezone.utc), method=r["method"] or "", note=r["note"] or "", by_user=r["by_user"] or "",
        id=r["record_id"]) for r in rows]


@dataclass
class HubList:
    """The shelter's list of one municipality built at the hub, with the hub's own records beside
    it: what HQ's JSON shows of each row (where the person was found, which HQ record, typed where)
    without deciding anything again — the status, filters, order and counts are ``build_rows``'."""

    snapshot: registry.SnapshotInfo
    anpi: AnpiList
    residents: dict[str, ResidentRecord]  # 宛名番号 → registry person
    stays: dict[str, list[dict[str, Any]]]  # 宛名番号 → the hub's stays (``sync.hub.hq.stays_index``)
    records: dict[str, dict[str, Any]]  # record_id → the hub's HQ record row
    #: 宛名番号 → the row as JSON, UTF-8 (filled as pages are served; shared by the copies a cached list
    #: hands out; bytes take half the memory of Japanese text as str)
    _json: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def json_bytes(self, r: AnpiRow) -> bytes:
        """:meth:`json_row` as the JSON answer writes it (once per built list: paging reuses it)."""
        out = self._json.get(r.resident_id)
        if out is None:
            out = self._json[r.resident_id] = _dumps(self.json_row(r)).encode("utf-8")
        return out

    def json_row(self, r: AnpiRow) -> dict[str, Any]:
        """One row of ``GET /v1/hq/anpi-list``: the shelter's row, plus the hub's stay it rests on
        (``where``) and the HQ record shown (``hq``, with ``typed_at`` hub | shelter)."""
        person = self.residents.get(r.resident_id)
        where = next((w for w in self.stays.get(r.resident_id, ()) if w["evacuee_id"] == r.evacuee_id),
                     None) if r.evacuee_id else None
        rec = self.records.get(r.hq_record_id) if r.hq_record_id else None
        return {
            "resident_id": r.resident_id, "household_id": r.household_id, "relationship": r.relationship,
            "name": r.name, "name_kana": r.kana, "alpha_name": person.alpha_name if person else "",
            "birth_date": r.birth_date.isoformat() if r.birth_date else "", "age": r.age, "sex": r.sex,
            "address": r.address, "town": r.town, "town_label": r.town_label or r.town, "restricted": r.restricted,
            "status": r.status,
            "status_ja": r.status_ja, "safe": r.safe, "where": where, "care": list(r.care),
            "hq": ({k: rec[k] for k in ("record_id", "status", "method", "note", "by_user", "at")}
                   | {"typed_at": _typed_at(rec)}) if rec else None}


def _typed_at(record: dict[str, Any]) -> str:
    return "hub" if record.get("device_id") is None else "shelter"


def snapshot_residents(rec: registry.Records) -> tuple[SortedResidents, dict[str, ResidentRecord]]:
    """The snapshot's residents parsed once and in list order (and by 宛名番号), kept with the decrypted
    rows in ``registry.open_records``' per-process cache: a snapshot never changes, so only the
    statuses are worked out again per request."""
    def build(r: registry.Records) -> tuple[SortedResidents, dict[str, ResidentRecord]]:
        people = residents_of(r)
        return sort_residents(people), {p.resident_id: p for p in people}
    return rec.derived("anpi_list.residents", build)


#: a built list is reused only while its inputs are equal to the ones just read — checked on every request
LIST_CACHE_SECONDS = Settings.from_env().hub_list_cache_seconds
LIST_CACHE_SIZE = Settings.from_env().hub_list_cache


@dataclass
class _Built:
    stays: dict[str, list[dict[str, Any]]]
    records: list[dict[str, Any]]
    hub: "HubList"
    at: float


_built: "OrderedDict[tuple[Any, ...], _Built]" = OrderedDict()
_built_lock = threading.Lock()


def _cached(ck: tuple[Any, ...], stays: dict[str, list[dict[str, Any]]],
            records: list[dict[str, Any]]) -> "HubList | None":
    """The list built for the same snapshot, filters and day from *equal* stays and HQ records: the
    hub's tables are read on every request and compared, so any new event, link or HQ record of the
    municipality shows on the very next request (nothing depends on a clock or a feed number)."""
    now = time.monotonic()
    with _built_lock:
        for k in [k for k, v in _built.items() if now - v.at > LIST_CACHE_SECONDS]:
            del _built[k]
        hit = _built.get(ck)
    if hit is None or hit.stays != stays or hit.records != records:
        return None
    return hit.hub


def _keep(ck: tuple[Any, ...], built: _Built) -> None:
    if LIST_CACHE_SIZE <= 0 or LIST_CACHE_SECONDS <= 0:
        return
    with _built_lock:
        _built[ck] = built
        _built.move_to_end(ck)
        while len(_built) > LIST_CACHE_SIZE:
            _built.popitem(last=False)


def clear_list_cache() -> None:
    with _built_lock:
        _built.clear()


def hub_list(engine: Engine, key: DataKey | None, m: str, *, filters: AnpiFilter | None = None,
             include_restricted: bool = False, today: date | None = None) -> HubList:
    """The shelter's ``AnpiList`` for municipality ``m`` from the hub's tables (``build_rows``), with
    the hub's records it was built from.

    The registry side is parsed and sorted once per snapshot (:func:`snapshot_residents`); the list
    built from it is kept a short while (``ANPI_HUB_LIST_CACHE_SECONDS``, a few per process) and
    served again only when the stays and HQ records read for this request equal the ones it was
    built from — so paging through a list costs one build, and a change shows at once.
    """
    f = filters or AnpiFilter()
    day = today or datetime.now().astimezone().date()
    snap, rec, stays, records = hq.list_inputs(engine, key, m)
    ck = (id(engine), m, snap.snapshot_id, f.towns, f.household, f.age_band, f.care_only, f.status,
          include_restricted, day)
    hit = _cached(ck, stays, records)
    if hit is not None:
        check_filters(f)  # the caller's filters read (a status label made a code) as build_rows does
        # a list as of now: the same rows, a new 作成 time for a file's notes
        return replace(hit, snapshot=snap, anpi=replace(hit.anpi, generated_at=utcnow()))
    residents, by_id = snapshot_residents(rec)
    lst = build_rows(residents, shelter_stays(m, stays), current_hq_records(hq_records_of(records)),
                     filters=f, today=day, include_restricted=include_restricted)
    lst.as_of, lst.gaiji_map = _date(snap.as_of), dict(rec.gaiji or {})
    lst.snapshot_id = snap.snapshot_id  # type: ignore[assignment]  # the hub's ids are ULIDs
    hl = HubList(snap, lst, by_id, stays, {r["record_id"]: r for r in records})
    _keep(ck, _Built(stays, records, hl, time.monotonic()))
    return hl


def hub_anpi_list(engine: Engine, key: DataKey | None, m: str, *, filters: AnpiFilter | None = None,
                  include_restricted: bool = False, today: date | None = None) -> AnpiList:
    """The shelter's ``AnpiList`` for municipality ``m``, from the hub's tables (``build_rows``)."""
    return hub_list(engine, key, m, filters=filters, include_restricted=include_restricted, today=today).anpi


def _dumps(doc: Any) -> str:
    """JSON as Starlette's ``JSONResponse`` renders it (so the answer is the same byte for byte)."""
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def _list_head(hl: HubList, limit: int, offset: int) -> tuple[dict[str, Any], list[AnpiRow]]:
    lst = hl.anpi
    start = max(0, offset)
    page = lst.rows[start:start + max(1, min(limit, 10000))]
    return {"snapshot": hl.snapshot.as_dict(), "filters": lst.filters.as_dict(), "total": len(lst.rows),
            "safe": sum(lst.counts[s] for s in SAFE), "counts": lst.counts, "town_counts": lst.town_counts}, page


def list_json(engine: Engine, key: DataKey | None, m: str, filters: AnpiFilter | None = None, *,
              limit: int = 1000, offset: int = 0, today: date | None = None) -> dict[str, Any]:
    """``GET /v1/hq/anpi-list``: HQ's internal view — 閲覧制限 people included and marked
    (``restricted``); no file or answer to anyone outside HQ is built from it.  Counts (per
    status, per 町字, ``safe``) are over every row the filters keep; ``rows`` is one page."""
    hl = hub_list(engine, key, m, filters=filters, include_restricted=True, today=today)
    head, page = _list_head(hl, limit, offset)
    return head | {"rows": [hl.json_row(r) for r in page]}


def list_json_bytes(engine: Engine, key: DataKey | None, m: str, filters: AnpiFilter | None = None, *,
                    limit: int = 1000, offset: int = 0, today: date | None = None) -> bytes:
    """:func:`list_json` already encoded (UTF-8), as ``JSONResponse`` would write it: each row's text
    is made once per built list, so the next page of a cached list costs a join, not 10,000 dumps."""
    hl = hub_list(engine, key, m, filters=filters, include_restricted=True, today=today)
    head, page = _list_head(hl, limit, offset)
    return b"".join((_dumps(head)[:-1].encode("utf-8"), b',"rows":[', b",".join([hl.json_bytes(r) for r in page]),
                     b"]}"))


def hq_history(engine: Engine, m: str, resident_id: str) -> list[dict[str, Any]]:
    """Every HQ record of one resident (laptops' and the hub's), oldest first, each marked by the
    list's own replay (``replay_hq_records``): ``in_force`` (the one the list uses), ``undone_by``
    (the withdrawal that took it back) or ``undoes`` (for a withdrawal)."""
    with engine.connect() as conn:
        rows = hq.hq_record_rows(conn, m, resident_id)
    stacks, undid = replay_hq_records(hq_records_of(rows))
    standing = stacks.get(resident_id)
    in_force = standing[-1].id if standing else None
    undone_by = {v: k for k, v in undid.items()}
    return [dict(r, typed_at=_typed_at(r), in_force=r["record_id"] == in_force,
                 undone_by=undone_by.get(r["record_id"]), undoes=undid.get(r["record_id"]),
                 status_ja=HQ_STATUS_JA.get(r["status"], r["status"])) for r in rows]


def check_format(fmt: str, encoding: str) -> tuple[str, str]:
    """(format, encoding) as the writers take them; InvalidInput naming the option otherwise."""
    fmt = (fmt or "").strip().lower()
    if fmt not in FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(FORMATS)}", "出力形式が正しくありません", "format")
    encoding = (encoding or "").strip().lower() or "utf-8-sig"
    if fmt != "csv" and encoding != "utf-8-sig":
        raise InvalidInput("--encoding applies to csv only", "文字コードはCSVだけに指定できます", "encoding")
    if encoding not in ENCODINGS:
        raise InvalidInput(f"--encoding must be one of {', '.join(ENCODINGS)}", "文字コードは UTF-8(BOM付) か CP932 です",
                           "encoding")
    return fmt, encoding


def export_anpi_list(engine: Engine, key: DataKey, municipality: str | None, out: Path, *, fmt: str,
                     encoding: str = "utf-8-sig", by: str = "operator", filters: AnpiFilter | None = None,
                     write_summary: bool = True, route: str = "cli: anpi hub export anpi-list") -> HubExport:
    """Write the list as csv / xlsx / pdf and audit it (format, filters, rows, every resident in it).

    A CSV gets its summary in ``FILE.summary.txt`` (unless ``write_summary`` is False); characters a
    format cannot hold are replaced and listed in ``FILE.replacements.csv`` (``result.replacements``).
    """
    fmt, encoding = check_format(fmt, encoding)
    with engine.connect() as conn:
        m = resolve_municipality(conn, municipality)
        names = municipality_names(conn)
    f = filters or AnpiFilter()
    lst = hub_anpi_list(engine, key, m, filters=f, include_restricted=False)
    table = export_table(lst, by=by, title=f"安否確認リスト {names.get(m, m)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result, summary = write_table(table, out, fmt=fmt, encoding=encoding, write_summary=write_summary)
    exported = [r for r in lst.rows if not r.restricted]
    safe = sum(1 for r in exported if r.safe)
    with engine.begin() as conn:
        set_tenant(conn, m)
        audit.record(conn, m, actor=by, action="export.anpi_list", detail={
            "format": fmt, "encoding": encoding if fmt == "csv" else "", "file": out.name, "rows": result.rows,
            "filters": f.as_dict(), "route": route, "restricted_excluded": table.excluded_count,
            "replacements": len(result.replacements), "snapshot_id": lst.snapshot_id, "safe": safe,
            "residents": [r.resident_id for r in exported]})
    return HubExport(out, fmt, result.rows, table.excluded_count, m, safe, result, summary, table)


# ---- HQ records typed at the hub ---------------------------------------------------------------------------
def record_hq(engine: Engine, key: DataKey | None, municipality: str | None, resident_id: str, status: str,
              method: str = "", note: str = "", *, by: str, actor: str = "",
              now: datetime | None = None) -> dict[str, Any]:
    """Store one HQ record typed at the hub (他の手段で確認 / 死亡 / 行方不明 / withdrawn) and audit it.

    Checked as on a laptop (``check_hq_input``; the resident must be in the municipality's newest
    registry backup; ``withdrawn`` needs a record in force).  Written under the municipality's hub
    lock, so two HQ desks withdrawing at once cannot both undo the same record; its time is set
    after every record of that resident already held (a laptop clock running ahead must not make a
    withdrawal replay before the record it undoes).

    The same transaction writes a hub notice ``hq.recorded`` (the payload of a laptop's
    ``sync.events.HqRecorded``) to the municipality's feed, so every laptop's safety list replays
    records typed here with its own and other laptops' (``app.services.anpi_list.hq_records``).
    """
    resident_id = (resident_id or "").strip()
    if not resident_id:
        raise InvalidInput("resident_id (宛名番号) is required", "宛名番号を入力してください", "resident_id")
    method, note, by_name = check_hq_input(status, method, note, by)
    if key is None:
        raise DataKeyError("the hub has no data key configured: the registry backup cannot be read")
    with engine.connect() as conn:
        m = resolve_municipality(conn, municipality)
        snap = registry.latest_snapshot(conn, m)
    if snap is None:
        raise RegistryError(f"no registry backup for municipality {m} at the hub yet "
                            "(anpi hub registry import FILE --municipality CODE)")
    if registry.open_records(engine, key, m, snap).by_id(resident_id) is None:
        raise NotFound(f"resident {resident_id!r} is not in the newest registry backup (as of {snap.as_of})",
                       f"宛名番号 {resident_id} は台帳にありません")
    at = now or datetime.now(timezone.utc)
    record_id = str(ULID())
    with engine.begin() as conn:
        hub_lock(conn, m)
        rows = hq.hq_record_rows(conn, m, resident_id)
        current = current_hq_records(hq_records_of(rows)).get(resident_id)
        if status == "withdrawn" and current is None:
            raise Conflict(f"resident {resident_id} has no HQ record to withdraw", "取り消す記録がありません")
        latest = max((parse_time(r["at"]) for r in rows if parse_time(r["at"])), default=None)
        if latest is not None and at <= latest:
            at = latest + timedelta(microseconds=1)
        row = dict(municipality_code=m, record_id=record_id, resident_id=resident_id, status=status,
                   method=method or None, note=note or None, by_user=by_name, at=at.isoformat(), device_id=None,
                   event_id=None)
        conn.execute(hub_hq_record.insert().values(**row))
        # the municipality's laptops replay it in their own lists (same shape as a laptop's event)
        insert_notices(conn, m, [{"type": HqRecorded.TYPE, "payload": HqRecorded(
            record_id=record_id, resident_id=resident_id, status=status, at=row["at"], method=method or None,
            note=note or None, by_user=by_name, municipality_code=m, snapshot_as_of=snap.as_of).to_dict()}])
        audit.record(conn, m, actor=actor or by_name, action="hq.recorded", detail={
            "resident_id": resident_id, "status": status, "method": method, "record_id": record_id,
            "withdrew": current.id if status == "withdrawn" and current else None})
    out = {k: v for k, v in row.items() if k != "municipality_code"}
    return out | {"typed_at": "hub", "withdrew": current.id if status == "withdrawn" and current else None}
