"""`anpi hub pfif …`: Google Person Finder (PFIF) at the hub — a thin face over `app.hub_pfif`.

    anpi hub pfif import FILE [--municipality CODE] [--csv-domain DOMAIN] [--json]
    anpi hub pfif sought [--municipality CODE] [--only linked|open] [--include-restricted] [--relink] [--json]
    anpi hub pfif decide SOUGHT_ID resident|evacuee TARGET_ID confirmed|rejected|undo [--municipality CODE]
    anpi hub pfif export --out FILE [--municipality CODE] [--expiry-days N] [--json]

Every command reads `--database-url` or env `ANPI_HUB_DATABASE_URL`; the registry backup (linking
to residents, 閲覧制限) is read with the hub data key (`ANPI_HUB_DATA_KEY` / `ANPI_HUB_DATA_KEY_FILE`).
Imports, views, decisions and exports are audited in the municipality's hub log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from app.cli_sync import DB_OPT, MUNI_OPT, _actor, hub_database

pfif_app = typer.Typer(no_args_is_help=True,
                       help="Google Person Finder (PFIF) at the hub: sought people in, safety notes out.")



def register(hub_app: typer.Typer) -> None:
    """Add this desk's commands to `anpi hub`."""
    hub_app.add_typer(pfif_app, name="pfif")


@pfif_app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="PFIF 1.1-1.4 XML, or Person Finder's CSV import format."),
    municipality: Optional[str] = MUNI_OPT,
    csv_domain: Optional[str] = typer.Option(None, "--csv-domain",
                                             help="Domain for bare CSV record ids (default: from source_name)."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Load sought people (捜索依頼) for one municipality and link them to its residents and evacuees."""
    from app.hub_pfif import import_file
    from sync.hub import registry

    with hub_database(database_url) as engine:
        r = import_file(engine, registry.load_data_key(), municipality, file, by=_actor(), csv_domain=csv_domain)
    for w in r.warnings:
        typer.echo(f"warning: {w}", err=True)
    if as_json:
        typer.echo(json.dumps({**r.as_dict(), "sought_ids": r.sought_ids}, ensure_ascii=False))
        return
    typer.echo(f"{r.file} (PFIF {r.version}): {r.persons} persons ({r.persons_new} new, {r.persons_updated} updated, "
               f"{r.persons_unchanged} unchanged), {r.notes} notes ({r.notes_new} new, {r.notes_updated} updated, "
               f"{r.notes_orphan} about persons not held here)")
    typer.echo(f"linked: {r.linked_auto} auto, {r.linked_review} to review")


@pfif_app.command("sought")
def sought_cmd(
    municipality: Optional[str] = MUNI_OPT,
    only: str = typer.Option("", "--only", help="linked or open (without a link)."),
    include_restricted: bool = typer.Option(False, "--include-restricted",
                                            help="Also show links touching 閲覧制限 (HQ's internal view)."),
    relink: bool = typer.Option(False, "--relink", help="Match every sought person again first."),
    as_json: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Sought people with their current links (suggested or confirmed)."""
    from app.hub_pfif import record_view, relink as relink_all, sought_list
    from sync.hub import registry

    if only not in ("", "linked", "open"):
        typer.echo("error: --only must be linked or open", err=True)
        raise typer.Exit(1)
    with hub_database(database_url) as engine:
        key = registry.load_data_key()
        if relink:
            typer.echo(f"relinked: {relink_all(engine, key, municipality, by=_actor())} link rows written", err=True)
        rows = sought_list(engine, key, municipality, reveal_restricted=include_restricted, only=only)
        record_view(engine, municipality, by=_actor(), count=len(rows),
                    where=f"cli: anpi hub pfif sought{' --include-restricted' if include_restricted else ''}")
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    from app.cli_pfif import echo_sought

    echo_sought([(r["sought_id"], r["name"], r["status"], r["person_record_id"],
                  [(lk["engine"] or lk["decision"], lk["target_kind"], lk["target_id"], lk["target"].get("name", ""),
                    lk["restricted"], lk["score"], lk["reasons"]) for lk in r["links"]]) for r in rows])


@pfif_app.command("decide")
def decide_cmd(
    sought_id: str = typer.Argument(...),
    kind: str = typer.Argument(..., help="resident or evacuee"),
    target_id: str = typer.Argument(..., help="宛名番号 or evacuee id"),
    decision: str = typer.Argument(..., help="confirmed, rejected or undo"),
    municipality: Optional[str] = MUNI_OPT,
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Confirm or reject a proposed link, or undo the last staff decision on it."""
    from app.hub_pfif import decide_link
    from sync.hub import registry

    with hub_database(database_url) as engine:
        row = decide_link(engine, registry.load_data_key(), municipality, sought_id, kind, target_id, decision,
                          by=_actor(), reveal_restricted=True)
    typer.echo(f"{kind} {target_id}: {row['decision']}")


@pfif_app.command("export")
def export_cmd(
    out: Path = typer.Option(..., "--out", help="PFIF 1.4 XML file to write."),
    municipality: Optional[str] = MUNI_OPT,
    expiry_days: Optional[int] = typer.Option(None, "--expiry-days", min=1,
                                              help="expiry_date = now + N days (default ANPI_PFIF_EXPIRY_DAYS or 365)."),
    as_json: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Evacuees at the municipality's shelters who consented to publication (⑭) as PFIF 1.4 (never 閲覧制限)."""
    from app.hub_pfif import export_pfif
    from sync.hub import registry

    with hub_database(database_url) as engine:
        res = export_pfif(engine, registry.load_data_key(), municipality, out, by=_actor(),
                          expiry_days=expiry_days)
    if as_json:
        typer.echo(json.dumps(res.as_dict(), ensure_ascii=False))
        return
    typer.echo(f"{res.persons} persons written to {out} ({res.no_consent} without consent ⑭ and "
               f"{res.protected} under 閲覧制限 left out)")
