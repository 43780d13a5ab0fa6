"""`anpi hub hq …`: HQ records typed at the hub (a thin face over `app.hub_export.record_hq`).

    anpi hub hq confirm RESIDENT_ID --status confirmed_other|dead|missing|withdrawn [--method 電話|訪問|その他]
                        [--note TEXT] --by NAME [--municipality CODE] [--database-url URL]
    anpi hub hq history RESIDENT_ID [--municipality CODE] [--json]

The record joins the laptops' (synced as ``hq.recorded``) in the hub's safety list and is audited
in the municipality's hub log; the registry backup is read with the hub data key
(``ANPI_HUB_DATA_KEY`` / ``ANPI_HUB_DATA_KEY_FILE``) to check the 宛名番号.
"""

from __future__ import annotations

import json
from typing import Optional

import typer

from app.cli_sync import DB_OPT, MUNI_OPT, _actor, hub_database

hq_app = typer.Typer(no_args_is_help=True, help="Disaster HQ at the hub: record 他の手段で確認 / 死亡 / 行方不明.")


@hq_app.command("confirm")
def hub_hq_confirm_cmd(
    resident_id: str = typer.Argument(..., help="宛名番号 of the municipality's resident."),
    status: str = typer.Option(..., "--status",
                               help="confirmed_other, dead, missing or withdrawn (undo the last record)."),
    method: str = typer.Option("", "--method", help="電話, 訪問 or その他 (also phone, visit, other)."),
    note: str = typer.Option("", "--note", help="Free text, e.g. who answered the phone."),
    by: str = typer.Option(..., "--by", help="Who at HQ recorded it."),
    municipality: Optional[str] = MUNI_OPT,
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Record what HQ learned of a resident by other means (phone, visit) or a death / missing report."""
    from app.hub_export import record_hq
    from app.services.anpi_list import HQ_STATUS_JA
    from sync.hub import registry

    with hub_database(database_url) as engine:
        key = registry.load_data_key(required=True)
        rec = record_hq(engine, key, municipality, resident_id, status.strip(), method, note, by=by.strip(),
                        actor=f"{_actor()} as {by.strip()}")
    typer.echo(f"resident {rec['resident_id']}: {rec['status']} ({HQ_STATUS_JA[rec['status']]}) recorded by "
               f"{rec['by_user']}" + (f" ({rec['method']})" if rec["method"] else "") + f"; record {rec['record_id']}")


@hq_app.command("history")
def hub_hq_history_cmd(
    resident_id: str = typer.Argument(..., help="宛名番号."),
    municipality: Optional[str] = MUNI_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON."),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Every HQ record of one resident (laptops' and the hub's), oldest first; * marks the one in force."""
    from app import hub_export
    from sync.hub.store import resolve_municipality

    with hub_database(database_url) as engine:
        with engine.connect() as conn:
            m = resolve_municipality(conn, municipality)
        rows = hub_export.hq_history(engine, m, resident_id.strip())
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, default=str))
        return
    if not rows:
        typer.echo(f"resident {resident_id.strip()}: no HQ record")
    for r in rows:
        mark = "*" if r["in_force"] else " "
        undone = f" (undone by {r['undone_by']})" if r["undone_by"] else ""
        typer.echo(f"{mark} {r['at']}  {r['status_ja']}  {r['method'] or ''}  {r['by_user'] or ''}  "
                   f"[{r['typed_at']}] {r['record_id']}{undone}".rstrip())


def register(hub_app: typer.Typer) -> None:
    """Add this desk's commands to `anpi hub`."""
    hub_app.add_typer(hq_app, name="hq")
