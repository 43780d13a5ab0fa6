"""`anpi hub certificate issue|list|reissue|void|pdf … [--municipality CODE]`: the certificate desk at
the hub on the command line, mirroring `anpi certificate …` (ARCHITECTURE.md §2) over app.hub_certificates.

Whoever runs these holds the hub database credentials (and the data key): an operator of the data
center acting for the municipality's HQ, so 閲覧制限 households are handled as HQ would (issued and
printed, never masked); every action is written to the municipality's hub audit log under
`operator:<login>` (or `--by`).  A PDF is written atomically after its certificate is stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from app.cli_certificate import issue_from_options, with_issue_options, write_file
from app.cli_sync import DB_OPT, MUNI_OPT, _actor, hub_database

certificate_app = typer.Typer(no_args_is_help=True,
                              help="Disaster certificates at the hub (り災証明書 / 被災証明書, every shelter's and the hub's).")

BY = typer.Option(None, "--by", help="Who does this (default: operator:<login>).")


def register(hub_app: typer.Typer) -> None:
    """Add this desk's commands to `anpi hub`."""
    hub_app.add_typer(certificate_app, name="certificate")


def _key() -> Any:
    from sync.hub import registry

    return registry.load_data_key()


def _pdf_to(engine: Any, municipality: Optional[str], number: str, out: Path, who: str) -> None:
    from app import hub_certificates as hc

    _, data = hc.pdf(engine, _key(), municipality, number, by=who)
    write_file(out, data)
    typer.echo(f"wrote {out}", err=True)


@certificate_app.command("issue")
@with_issue_options
def issue_cmd(municipality: Optional[str] = MUNI_OPT, by: Optional[str] = BY, database_url: Optional[str] = DB_OPT,
              **opts: Any) -> None:
    """Issue a certificate at the hub; prints its number."""
    from app import hub_certificates as hc

    who = by or _actor()
    with hub_database(database_url) as engine:
        cert = issue_from_options(hc.HubCertificates(engine, _key(), municipality), who, **opts)
        typer.echo(cert.number)
        if opts["out"] is not None:
            _pdf_to(engine, municipality, cert.number, opts["out"], who)


@certificate_app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json"),
    kind: str = typer.Option("", "--kind", help="risai or hisai."),
    status: str = typer.Option("", "--status", help="issued or void."),
    resident: str = typer.Option("", "--resident", help="宛名番号 (applicant or household member) or 世帯番号."),
    q: str = typer.Option("", "--q", help="Part of the number, name or address."),
    origin: str = typer.Option("", "--origin", help="hub or laptop."),
    municipality: Optional[str] = MUNI_OPT,
    by: Optional[str] = BY,
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Every certificate of the municipality (shelter laptops' and the hub's), newest first."""
    from app import hub_certificates as hc

    with hub_database(database_url) as engine:
        rows = hc.list_certificates(engine, _key(), municipality, kind=kind, status=status, resident=resident,
                                    q=q, origin=origin, by=by or _actor())
    data = [c.as_dict() for c in rows]
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for r in data:
        flags = "".join([" 手動" if r["manual"] else "", f" 再発行{r['reissue_count']}" if r["reissue_count"] else "",
                         " 無効" if r["status"] == "void" else "",
                         f" [{r['shelter_name'] or r['device_id']}]" if r["origin"] == "laptop" else " [本部]"])
        typer.echo(f"{r['number']}  {r['kind_ja']}  {r['damage_ja'] or '-'}  {r['head_name'] or '-'}  "
                   f"{r['issued_at']}{flags}")


@certificate_app.command("reissue")
def reissue_cmd(
    number: str = typer.Argument(..., help="整理番号."),
    reason: str = typer.Option("", "--reason", help="Why (e.g. 紛失)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the reissued PDF here."),
    municipality: Optional[str] = MUNI_OPT,
    by: Optional[str] = BY,
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Reissue under the same number (logged; the paper says 再発行)."""
    from app import hub_certificates as hc

    who = by or _actor()
    with hub_database(database_url) as engine:
        cert = hc.reissue(engine, _key(), municipality, number, reason=reason, by=who)
        typer.echo(f"{cert.number} reissued (reissue {cert.reissue_count})")
        if out is not None:
            _pdf_to(engine, municipality, cert.number, out, who)


@certificate_app.command("void")
def void_cmd(
    number: str = typer.Argument(..., help="整理番号."),
    reason: str = typer.Option("", "--reason", help="Why the certificate is void (required)."),
    municipality: Optional[str] = MUNI_OPT,
    by: Optional[str] = BY,
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Mark a certificate void at the hub (kept, never printed again); a reason is required."""
    from app import hub_certificates as hc

    with hub_database(database_url) as engine:
        cert = hc.void(engine, _key(), municipality, number, reason, by=by or _actor())
    typer.echo(f"{cert.number} void: {cert.void_reason}")


@certificate_app.command("pdf")
def pdf_cmd(
    number: str = typer.Argument(..., help="整理番号."),
    out: Path = typer.Option(..., "--out", help="PDF file to write."),
    municipality: Optional[str] = MUNI_OPT,
    by: Optional[str] = BY,
    database_url: Optional[str] = DB_OPT,
) -> None:
    """Print a valid certificate again as A4 PDF (audited; not a reissue)."""
    with hub_database(database_url) as engine:
        _pdf_to(engine, municipality, number, out, by or _actor())
