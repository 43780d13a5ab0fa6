"""`anpi certificate issue|list|reissue|void` (ARCHITECTURE.md §2): a thin face over app.services.certificates.

Every command opens one transaction: the certificate, its number, its history, the sync event and
the audit entry commit together; a PDF is written (atomically, via a temporary file) only after
that commit, so a file on disk always belongs to a certificate that exists.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from sqlmodel import Session

from app.cli_common import cli_errors, engine_for, os_user
from app.db import session as db_session
from app.services.errors import InvalidInput
from sync.files import atomic_write_bytes

certificate_app = typer.Typer(no_args_is_help=True, help="Disaster certificates (り災証明書 / 被災証明書).")


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `anpi` app."""
    app.add_typer(certificate_app, name="certificate")


def _default_user() -> str:
    """Certificates name the operator by login name alone (it is printed in the desk's history)."""
    return os_user() or "cli"


@contextmanager
def _session(ctx: typer.Context) -> Iterator[Session]:
    """One session on the shelter database; the engine is disposed after, so no file handle outlives
    the command (`anpi restore` refuses a database that is still open)."""
    engine = engine_for(ctx)
    try:
        with db_session(engine) as s:
            yield s
    finally:
        engine.dispose()


def write_file(out: Path, data: bytes) -> None:
    """Atomically (a temporary file, then rename): a PDF on disk is always whole."""
    atomic_write_bytes(out, data)


def _write_pdf(ctx: typer.Context, number: str, out: Path, by: str) -> None:
    from app.services import certificates

    with _session(ctx) as s:
        data = certificates.pdf(s, number, by=by, screen="cli certificate")
        s.commit()
    write_file(out, data)
    typer.echo(f"wrote {out}", err=True)


BY = typer.Option(None, "--by", help="Who does this (default: the OS user).")

# options `anpi certificate issue` and `anpi hub certificate issue` share
KIND = typer.Option(..., "--kind", help="risai (り災証明書) or hisai (被災証明書).")
CAUSE = typer.Option(..., "--cause", help="罹災原因, e.g. 令和8年11月20日の地震.")
DAMAGE = typer.Option(None, "--damage", help="り災 only: 全壊 大規模半壊 中規模半壊 半壊 準半壊 一部損壊, "
                                             "or zenkai/daikibo/chukibo/hankai/junhankai/ichibu.")
LOCATION = typer.Option("", "--location", help="被災住家の所在地 (default: the head's address).")
ID_NOTE = typer.Option("", "--id-note", help="How identity was checked, e.g. 運転免許証.")
NO_MEMBERS = typer.Option(False, "--no-members", help="Leave the 世帯構成員 table off.")
MANUAL = typer.Option(False, "--manual", help="Manual path: the registry does not know the applicant.")
NAME = typer.Option("", "--name", help="Manual path: 世帯主氏名 as declared.")
ADDRESS = typer.Option("", "--address", help="Manual path: 世帯主住所 as declared.")
MEMBER = typer.Option([], "--member", help="Manual path, repeatable: '氏名,続柄,生年月日'.")
NOTE = typer.Option("", "--note", help="Manual path: why the registry could not be used.")
PDF_OUT = typer.Option(None, "--out", help="Write the certificate PDF here.")


def check_issue_path(manual: bool, resident_id: str | None, manual_only: dict[str, Any]) -> None:
    """--manual and --resident-id choose the path; options of the manual path (``manual_only``:
    option name → value given) make no sense without it."""
    if manual:
        if resident_id:
            raise InvalidInput("--manual and --resident-id exclude each other", field="resident_id")
        return
    if not resident_id:
        raise InvalidInput(
            "--resident-id is required (or --manual --name … --address … for people the registry does not know)",
            field="resident_id")
    if any(manual_only.values()):
        raise InvalidInput(f"{'/'.join(manual_only)} belong to --manual", field="manual")


RESIDENT_ID = typer.Option(None, "--resident-id", help="宛名番号 of the applicant in the newest registry.")
IN_PERSON = typer.Option(False, "--in-person", help="The desk checked the applicant's ID in person "
                                                    "(needed when no match links the resident to an evacuee).")
#: the options of `anpi certificate issue` and `anpi hub certificate issue`, declared once
ISSUE_OPTIONS: list[tuple[str, Any, Any]] = [
    ("kind", str, KIND), ("cause", str, CAUSE), ("resident_id", Optional[str], RESIDENT_ID),
    ("damage", Optional[str], DAMAGE), ("location", str, LOCATION), ("in_person", bool, IN_PERSON),
    ("id_note", str, ID_NOTE), ("no_members", bool, NO_MEMBERS), ("manual", bool, MANUAL), ("name", str, NAME),
    ("address", str, ADDRESS), ("member", list[str], MEMBER), ("note", str, NOTE), ("out", Optional[Path], PDF_OUT),
]


def with_issue_options(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command `fn(…, **opts)` the issue options (`ISSUE_OPTIONS`) after its own first
    parameter (the context, if any): the shelter's and the hub's issue commands take the same
    options without writing them twice. Typer reads the signature set here."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    head = [p for p in own if p.annotation is typer.Context]
    rest = [p.replace(kind=p.KEYWORD_ONLY) for p in own if p.annotation is not typer.Context]
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=t) for n, t, d in ISSUE_OPTIONS]
    fn.__signature__ = sig.replace(parameters=[*head, *extra, *rest])  # type: ignore[attr-defined]
    return fn


def issue_from_options(store: Any, who: str, *, kind: str, cause: str, resident_id: Optional[str],
                       damage: Optional[str], location: str, in_person: bool, id_note: str, no_members: bool,
                       manual: bool, name: str, address: str, member: list[str], note: str, out: Any = None) -> Any:
    """Issue by the path the options choose (`certificate_desk`), at whichever desk `store` is."""
    from app.services import certificate_desk as desk
    from app.services.certificate_rules import parse_members

    check_issue_path(manual, resident_id, {"--name": name, "--address": address, "--member": member, "--note": note})
    if manual:
        return desk.issue_manual(store, kind=kind, cause=cause, name=name, address=address, damage=damage,
                                 location=location, members=parse_members("\n".join(member)), note=note, by=who)
    return desk.issue(store, resident_id=resident_id or "", kind=kind, cause=cause, damage=damage, location=location,
                      in_person=in_person, identity_note=id_note, include_members=not no_members, by=who)


@certificate_app.command("issue")
@cli_errors
@with_issue_options
def issue_cmd(ctx: typer.Context, by: Optional[str] = BY, **opts: Any) -> None:
    """Issue a certificate to the resident's household; prints its number."""
    from app.services.certificates import ShelterCertificates

    who = by or _default_user()
    with _session(ctx) as s:
        cert = issue_from_options(ShelterCertificates(s, screen="cli certificate issue"), who, **opts)
        s.commit()
        number = cert.number
    typer.echo(number)
    if opts["out"] is not None:
        _write_pdf(ctx, number, opts["out"], who)


def _row(c: Any) -> dict[str, Any]:
    from app.services.certificates import DAMAGE_JA, KIND_JA

    return {"number": c.number, "kind": c.kind, "kind_ja": KIND_JA.get(c.kind, c.kind), "status": c.status,
            "resident_id": c.resident_id, "household_id": c.household_id, "head_name": c.head_name,
            "head_address": c.head_address, "cause": c.cause, "location": c.location, "damage": c.damage,
            "damage_ja": DAMAGE_JA.get(c.damage, ""), "members": c.members, "manual": c.manual,
            "identity": c.identity, "issued_at": c.issued_at.isoformat(timespec="seconds"), "issued_by": c.issued_by,
            "reissue_count": c.reissue_count, "void_reason": c.void_reason}


@certificate_app.command("list")
@cli_errors
def list_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    kind: str = typer.Option("", "--kind", help="risai or hisai."),
    status: str = typer.Option("", "--status", help="issued or void."),
    q: str = typer.Option("", "--q", help="Part of the number, name or address, or a 宛名番号."),
    by: Optional[str] = BY,
) -> None:
    """Issued certificates, newest first."""
    from app.services import audit, certificates

    with _session(ctx) as s:
        rows = certificates.list_certificates(s, certificates.CertificateFilter(
            q=q, kind=kind, status=status, reveal_restricted=True))  # the operator holds the database itself
        audit.record(s, by or _default_user(), "view", "cli certificate list",
                     [f"certificate:{c.number}" for c in rows], {"q": q, "kind": kind, "status": status})
        s.commit()
    data = [_row(c) for c in rows]
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for r in data:
        flags = "".join([" 手動" if r["manual"] else "", f" 再発行{r['reissue_count']}" if r["reissue_count"] else "",
                         " 無効" if r["status"] == "void" else ""])
        typer.echo(f"{r['number']}  {r['kind_ja']}  {r['damage_ja'] or '-'}  {r['head_name']}  {r['issued_at']}{flags}")


@certificate_app.command("reissue")
@cli_errors
def reissue_cmd(
    ctx: typer.Context,
    number: str = typer.Argument(..., help="整理番号."),
    reason: str = typer.Option("", "--reason", help="Why (e.g. 紛失)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the reissued PDF here."),
    by: Optional[str] = BY,
) -> None:
    """Reissue under the same number (logged; the paper says 再発行)."""
    from app.services import certificates

    who = by or _default_user()
    with _session(ctx) as s:
        cert = certificates.reissue(s, number, by=who, reason=reason, screen="cli certificate reissue")
        s.commit()
        number, count = cert.number, cert.reissue_count
    typer.echo(f"{number} reissued (reissue {count})")
    if out is not None:
        _write_pdf(ctx, number, out, who)


@certificate_app.command("void")
@cli_errors
def void_cmd(
    ctx: typer.Context,
    number: str = typer.Argument(..., help="整理番号."),
    reason: str = typer.Option("", "--reason", help="Why the certificate is void (required)."),
    by: Optional[str] = BY,
) -> None:
    """Mark a certificate void (kept, never printed again); a reason is required."""
    from app.services import certificates

    with _session(ctx) as s:
        cert = certificates.void(s, number, reason, by=by or _default_user(), screen="cli certificate void")
        s.commit()
    typer.echo(f"{cert.number} void: {cert.void_reason}")
