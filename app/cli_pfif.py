"""`anpi pfif import FILE`, `anpi pfif links`, `anpi pfif export --out FILE`: Person Finder interchange.

A thin face over app.services.pfif. Mounted by app/cli.py through `register(app)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from app.cli_common import cli_errors, cli_user, engine_for

pfif_app = typer.Typer(no_args_is_help=True, help="Google Person Finder (PFIF): sought persons in, safety notes out.")


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `anpi` app."""
    app.add_typer(pfif_app, name="pfif")


@pfif_app.command("import")
@cli_errors
def import_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="PFIF 1.1-1.4 XML, or Person Finder's CSV import format."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    csv_domain: Optional[str] = typer.Option(None, "--csv-domain",
                                             help="Domain for bare CSV record ids (default: from source_name)."),
) -> None:
    """Load sought persons (捜索依頼) and link them to residents and evacuees."""
    from app.db import session as db_session
    from app.services.pfif import import_pfif

    with db_session(engine_for(ctx)) as s:
        r = import_pfif(s, file, by_user=cli_user(), csv_domain=csv_domain)
    for w in r.warnings:
        typer.echo(f"warning: {w}", err=True)
    if as_json:
        typer.echo(json.dumps(r.as_dict(), ensure_ascii=False))
        return
    typer.echo(f"{r.file} (PFIF {r.version}): {r.persons} persons ({r.persons_new} new, {r.persons_updated} updated, "
               f"{r.persons_unchanged} unchanged), {r.notes} notes ({r.notes_new} new, {r.notes_updated} updated, "
               f"{r.notes_orphan} about persons not held here)")
    typer.echo(f"linked: {r.linked_auto} auto, {r.linked_review} to review")


@pfif_app.command("links")
@cli_errors
def links_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    relink: bool = typer.Option(False, "--relink", help="Match every sought person again first."),
    include_restricted: bool = typer.Option(False, "--include-restricted",
                                            help="Also show links touching 閲覧制限 (HQ only)."),
    only: str = typer.Option("", "--only", help="linked or open (without a link)."),
) -> None:
    """Sought persons with their current links (auto, review, confirmed)."""
    from app.db import session as db_session
    from app.services import audit
    from app.services.pfif import relink_all, sought_overview

    engine = engine_for(ctx)
    if relink:
        with db_session(engine) as s:
            n = relink_all(s, by_user=cli_user())
        typer.echo(f"relinked: {n} link rows written", err=True)
    with db_session(engine) as s:
        views = sought_overview(s, reveal_restricted=include_restricted, only=only if only in ("linked", "open") else "")
        subjects = [f"sought:{v.person.id}" for v in views] + [f"{lv.link.target_kind}:{lv.link.target_id}"
                                                              for v in views for lv in v.links]
        audit.record(s, cli_user(), "view", "cli: anpi pfif links", subjects,
                     {"count": len(views), "include_restricted": include_restricted})
        s.commit()
    rows = [{
        "sought_id": v.person.id, "pfif_record_id": v.person.pfif_record_id, "name": v.name,
        "status": v.person.latest_status, "source_file": v.person.source_file,
        "links": [{"kind": lv.link.target_kind, "target_id": lv.link.target_id, "decision": lv.link.decision,
                   "score": lv.link.score, "reasons": lv.link.reasons, "by_user": lv.link.by_user,
                   "name": lv.target.get("name", ""), "restricted": lv.restricted} for lv in v.links],
    } for v in views]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    echo_sought([(r["sought_id"], r["name"], r["status"], r["pfif_record_id"],
                  [(lk["decision"], lk["kind"], lk["target_id"], lk["name"], lk["restricted"], lk["score"], lk["reasons"])
                   for lk in r["links"]]) for r in rows])


def echo_sought(rows: list[tuple[str, str, Any, str, list[tuple[str, str, str, str, bool, Any, str]]]]) -> None:
    """The sought list as `anpi pfif links` and `anpi hub pfif sought` print it: (id, name, status,
    record id, links as (decision, target kind, target id, target name, restricted, score, reasons))."""
    for sid, name, status, record_id, links in rows:
        typer.echo(f"{sid}  {name}  [{status or '-'}]  {record_id}")
        for decision, kind, target_id, target_name, restricted, score, reasons in links:
            flag = " (閲覧制限)" if restricted else ""
            typer.echo(f"    {decision:<9} {kind:<8} {target_id}  {target_name}{flag}  {(score or 0):.3f}  {reasons}")
    typer.echo(f"{len(rows)} sought persons", err=True)


@pfif_app.command("decide")
@cli_errors
def decide_cmd(
    ctx: typer.Context,
    sought_id: str = typer.Argument(...),
    kind: str = typer.Argument(..., help="resident or evacuee"),
    target_id: str = typer.Argument(..., help="宛名番号 or evacuee id"),
    decision: str = typer.Argument(..., help="confirmed, rejected or undo"),
) -> None:
    """Confirm or reject a proposed link, or undo the last staff decision on it."""
    from app.db import session as db_session
    from app.services.pfif import decide_link

    with db_session(engine_for(ctx)) as s:
        row = decide_link(s, sought_id, kind, target_id, decision, by_user=cli_user(), reveal_restricted=True,
                          screen="cli: anpi pfif decide")
        s.commit()
    typer.echo(f"{kind} {target_id}: {row.decision}")


@pfif_app.command("export")
@cli_errors
def export_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="PFIF 1.4 XML file to write."),
    expiry_days: Optional[int] = typer.Option(None, "--expiry-days",
                                              help="expiry_date = now + N days (default ANPI_PFIF_EXPIRY_DAYS or 365)."),
) -> None:
    """Evacuees who consented to publication (⑭) as PFIF 1.4 for Person Finder (never 閲覧制限)."""
    from app.db import session as db_session
    from app.services.pfif import export_pfif

    with db_session(engine_for(ctx)) as s:
        n = export_pfif(s, out, by_user=cli_user(), expiry_days=expiry_days, screen="cli: anpi pfif export")
    typer.echo(f"{n} persons written to {out}")
