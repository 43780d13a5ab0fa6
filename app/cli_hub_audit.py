"""`anpi hub audit …`: the laptops' audit chains as the hub sees them.

    anpi hub audit verify --device NAME_OR_ID [--municipality CODE] [--json]
    anpi hub audit anomalies [--municipality CODE] [--json]

`verify` compares every audit head a laptop reported at its syncs with what it reported later
(`sync.hub.audit_head`): exit 1 and "TAIL CUT" when entries the hub once saw are gone or were
rewritten; a restore from a backup is named as such. `anomalies` runs the shelter's anomaly rules
(`app.services.audit_anomalies`) over every laptop's uploaded log. Both looks are written to the
municipality's hub audit log.
"""

from __future__ import annotations

import json
from typing import Optional

import typer

from app.cli_sync import DB_OPT, MUNI_OPT, _actor, hub_database

audit_app = typer.Typer(no_args_is_help=True, help="Laptop audit chains at the hub: cut tails, anomalies.")


def _tenant(engine, municipality: Optional[str]) -> str:  # type: ignore[no-untyped-def]
    from sync.hub.store import resolve_municipality

    with engine.connect() as conn:
        return resolve_municipality(conn, municipality)


def _note(engine, m: str, action: str, detail: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    from sync.hub import audit

    with engine.begin() as conn:
        audit.record(conn, m, actor=_actor(), action=action, detail=detail)


def _print_verify(res: dict) -> None:  # type: ignore[type-arg]
    latest = res["latest"]
    if latest is None:
        typer.echo(f"device {res['device']}: no audit head reported yet (it has not synced since the hub "
                   "learned to ask)")
        return
    typer.echo(f"device {res['device']} ({res['device_id']}): {res['reports']} reports; latest head entry "
               f"{latest['seq']} {latest['hash'][:16]}… at {latest['received_at']}; {res['entries_held']} entries held")
    for p in res["problems"]:
        typer.echo(f"  {p['received_at']}: {p['status'].upper()}: {p['reason']}")
    typer.echo("audit chain OK: no tail was cut" if res["ok"] else
               "TAIL CUT: entries this laptop reported before were removed or rewritten (copies held at the hub)")


@audit_app.command("verify")
def hub_audit_verify_cmd(
    device: str = typer.Option(..., "--device", help="Device name (as enrolled) or device id."),
    municipality: Optional[str] = MUNI_OPT,
    as_json: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Compare the audit heads one laptop reported over time; exit 1 when its tail was cut."""
    from sync.hub import audit_head

    with hub_database(database_url) as engine:
        m = _tenant(engine, municipality)
        res = audit_head.verify_device(engine, m, device)
        _note(engine, m, "device_audit.verified", {"device": res["device_id"], "ok": res["ok"]})
    if as_json:
        typer.echo(json.dumps(res, ensure_ascii=False, default=str))
    else:
        _print_verify(res)
    if not res["ok"]:
        raise typer.Exit(1)


@audit_app.command("anomalies")
def hub_audit_anomalies_cmd(
    municipality: Optional[str] = MUNI_OPT,
    as_json: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Staff whose looks at personal data are unlike their work, across the municipality's laptops."""
    from app.cli_admin import print_flags
    from app.services.audit_anomalies import hub_report
    from sync.hub import registry

    with hub_database(database_url) as engine:
        m = _tenant(engine, municipality)
        flags, restricted_checked = hub_report(engine, m, registry.load_data_key())
        _note(engine, m, "device_audit.anomalies", {"flags": len(flags)})
    if not restricted_checked:
        typer.echo("note: no hub data key (ANPI_HUB_DATA_KEY_FILE): looks at 閲覧制限 people were not checked",
                   err=True)
    print_flags(flags, as_json)


def register(hub_app: typer.Typer) -> None:
    """Add `anpi hub audit` to the hub commands."""
    hub_app.add_typer(audit_app, name="audit")
