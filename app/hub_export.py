"""``anpi hub export anpi-list``: one municipality's safety list across every shelter on the hub.

The rows are the shelter's own (``app.services.anpi_list``: ``ResidentRecord``, ``ShelterStay``,
``build_rows``, ``export_table``) and so are the writers (``app.formats.anpi_list_export``); only
the data comes from the hub: the municipality's newest registry backup (decrypted) and where
each resident was found — at its own shelters, or at another town's shelter through a sharing
agreement.  Nothing of another municipality is read (every hub query is scoped to the one
municipality, and PostgreSQL's row-level security holds it to that).  閲覧制限 people never reach
the file (``export_table`` drops them and reports only their number).  Audited in the hub log.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from app.formats.anpi_list_export import ExportResult, summary_lines, write_csv, write_xlsx
from app.services.anpi_list import ResidentRecord, ShelterStay, build_rows, export_table
from matching.address import town_key
from sync.hub import audit, hq, registry
from sync.hub.registry import DataKey
from sync.hub.store import municipality_names, resolve_municipality, set_tenant

FORMATS = ("csv", "xlsx")


@dataclass
class HubExport:
    path: Path
    format: str
    rows: int
    restricted_excluded: int
    municipality_code: str
    safe: int
    result: ExportResult


def _dt(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _date(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def _care(flags: Any) -> tuple[str, ...]:
    if not isinstance(flags, dict):
        return ()
    return tuple(sorted(str(k) for k, v in flags.items() if v is True and k != "restricted"))


def export_anpi_list(engine: Engine, key: DataKey, municipality: str | None, out: Path, *, fmt: str,
                     encoding: str = "utf-8-sig", by: str = "operator") -> HubExport:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    with engine.connect() as conn:
        m = resolve_municipality(conn, municipality)
        names = municipality_names(conn)
        snap = registry.latest_snapshot(conn, m)
        if snap is None:
            raise registry.RegistryError(f"no registry backup for municipality {m} at the hub yet "
                                         "(anpi hub registry import FILE --municipality CODE)")
        found = hq.safety_index(conn, m)
    rec = registry.open_records(engine, key, m, snap)
    residents = []
    for d in registry.iter_rows(rec):
        address = d.get("address") or ""
        residents.append(ResidentRecord(
            resident_id=str(d["resident_id"]), household_id=d.get("household_id") or "",
            relationship=d.get("relationship") or "", family_name=d.get("family_name") or "",
            given_name=d.get("given_name") or "", family_name_kana=d.get("family_name_kana") or "",
            given_name_kana=d.get("given_name_kana") or "", alpha_name=d.get("alpha_name") or "",
            birth_date=_date(d.get("birth_date")), birth_raw=d.get("birth_raw") or "", sex=d.get("sex") or "",
            address=address, town=(town_key(address) or "") if address else "", restricted=bool(d.get("restricted"))))
    stays: dict[str, list[ShelterStay]] = {}
    for rid, w in found.items():
        own = w["municipality_code"] == m
        shelter = w.get("shelter_name") or w.get("shelter_code") or ""
        if not own:
            shelter = f"{w.get('municipality_name') or w['municipality_code']} {shelter}".strip()
        state = w.get("evacuee_status") or "in_shelter"
        stays[rid] = [ShelterStay(shelter=shelter, state=state if state in ("in_shelter", "left", "transferred")
                                  else "in_shelter", since=_dt(w.get("since")),
                                  left_at=_dt(w.get("last_stay_at")) if state != "in_shelter" else None,
                                  care=_care(w.get("care")), evacuee_id=w.get("evacuee_id") or "", remote=not own)]
    lst = build_rows(residents, stays, {}, include_restricted=False)
    lst.as_of, lst.gaiji_map = _date(snap.as_of), dict(rec.gaiji or {})
    lst.snapshot_id = snap.snapshot_id  # type: ignore[assignment]  # the hub's ids are ULIDs
    title = f"安否確認リスト {names.get(m, m)}"
    table = export_table(lst, by=by, title=title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = write_csv(table, out, encoding=encoding) if fmt == "csv" else write_xlsx(table, out)
    if fmt == "csv":
        summary = out.with_name(out.stem + ".summary.txt")
        tmp = summary.with_name(summary.name + ".tmp")
        tmp.write_text("\n".join(summary_lines(table)) + "\n", encoding="utf-8-sig")
        tmp.replace(summary)
    safe = sum(1 for r in lst.rows if r.safe and not r.restricted)
    with engine.begin() as conn:
        set_tenant(conn, m)
        audit.record(conn, m, actor=by, action="export.anpi_list", detail={
            "format": fmt, "encoding": encoding if fmt == "csv" else "", "file": out.name, "rows": result.rows,
            "restricted_excluded": table.excluded_count, "snapshot_id": snap.snapshot_id, "safe": safe,
            "residents": [r.resident_id for r in lst.rows if not r.restricted]})
    return HubExport(out, fmt, result.rows, table.excluded_count, m, safe, result)
