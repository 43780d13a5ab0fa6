"""`anpi audit verify` and `anpi audit export --out FILE` (ARCHITECTURE.md §2): a thin face over app.services.audit.

Mounted by app/cli.py as `app.add_typer(audit_app, name="audit")`; the database path comes from
`ctx.obj["db_path"]` like every other command.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from app.cli_common import cli_user, engine_for
from app.db import session as db_session
from app.services import audit
from app.services.errors import AnpiError

audit_app = typer.Typer(no_args_is_help=True, help="Audit log (keyed hash chain): verify, export, anomalies.")


@audit_app.command("verify")
def verify_cmd(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the hash chain; exits 1 and names the first broken entry if anything was changed."""
    with db_session(engine_for(ctx)) as s:
        res = audit.verify(s)
    if as_json:
        typer.echo(json.dumps({"ok": res.ok, "entries": res.entries, "first_bad_id": res.first_bad_id,
                               "reason": res.reason, "keyed_from": res.keyed_from, "head_id": res.head_id,
                               "head_hash": res.head_hash}, ensure_ascii=False))
    elif res.ok:
        keyed = (f"keyed from entry {res.keyed_from}" if res.keyed_from
                 else "not keyed yet (entries before the key are checked as plain SHA-256)")
        typer.echo(f"audit chain OK: {res.entries} entries, {keyed}; last entry {res.head_id} "
                   f"{res.head_hash[:16]}… (a cut tail shows only at the hub: anpi hub audit verify)")
    else:
        typer.echo(f"error: audit chain broken at entry {res.first_bad_id}: {res.reason}", err=True)
    if not res.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def export_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Output file: .csv (UTF-8 with BOM) or .jsonl (JSON lines)."),
    fmt: str = typer.Option("auto", "--format", help="auto (by suffix), csv or jsonl."),
) -> None:
    """Write the whole audit log to a file (the export itself is recorded in the log)."""
    try:
        with db_session(engine_for(ctx)) as s:
            audit.record(s, cli_user(), "audit_export", "cli: anpi audit export", detail={"file": out.name})
            s.commit()
            n = audit.export(s, out, fmt)
    except AnpiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{n} audit entries written to {out}")


def print_flags(flags: list, as_json: bool) -> None:  # type: ignore[type-arg]
    """One block per flag: account, rule, summary, the entry ids behind it (shared with the hub's command)."""
    if as_json:
        typer.echo(json.dumps({"flags": [f.as_dict() for f in flags]}, ensure_ascii=False))
        return
    if not flags:
        typer.echo("no anomalies: nobody's looks at personal data stand out")
        return
    for f in flags:
        where = f"[{f.device}] " if f.device else ""
        ids = ", ".join(str(i) for i in f.entry_ids[:50]) + (" …" if len(f.entry_ids) > 50 else "")
        typer.echo(f"{where}{f.user} ({f.role or '?'}) {f.rule}: {f.summary}\n  entries: {ids}")


@audit_app.command("anomalies")
def anomalies_cmd(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Staff whose looks at personal data are unlike their work (rules in README; the look is audited)."""
    from app.services.audit_anomalies import shelter_report

    with db_session(engine_for(ctx)) as s:
        flags = shelter_report(s)
        audit.record(s, cli_user(), "audit_view", "cli: anpi audit anomalies", detail={"flags": len(flags)})
        s.commit()
    print_flags(flags, as_json)
