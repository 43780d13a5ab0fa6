"""`anpi card print|verify` (ARCHITECTURE.md §2): a thin face over app.services.cards / card_keys.

    anpi card print EVACUEE_ID… --out FILE.pdf [--size a6|label62] [--no-prefill]
    anpi card verify TEXT        exit 0 and the evacuee id for a genuine card; 1 when forged or altered

Printing is audited (the evacuees printed); a 閲覧制限 person's card is printed blind (the one rule,
app.services.cards). `verify` shows only the id the card carries, never its sealed items.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from sqlmodel import Session

from app.cli_certificate import write_file
from app.cli_common import cli_errors, cli_user, engine_for, fail

@contextmanager
def _session(ctx: typer.Context) -> Iterator[Session]:
    """One session; the engine is disposed after, so no file handle outlives the command."""
    from app.db import session as db_session

    engine = engine_for(ctx)
    try:
        with db_session(engine) as s:
            yield s
    finally:
        engine.dispose()


card_app = typer.Typer(no_args_is_help=True, help="避難者カード: print cards with a signed QR code, check a scanned one.")


@card_app.command("print")
@cli_errors
def card_print_cmd(
    ctx: typer.Context,
    evacuee_ids: list[str] = typer.Argument(..., help="Evacuee ids (one card each)."),
    out: Path = typer.Option(..., "--out", help="PDF file to write."),
    size: str = typer.Option("a6", "--size", help="a6 (sheet) or label62 (62 mm label roll)."),
    prefill: bool = typer.Option(True, "--prefill/--no-prefill",
                                 help="Seal the basic four items in the QR so another shelter can prefill."),
) -> None:
    """Print one card per evacuee into one PDF."""
    from app.services import audit, cards

    with _session(ctx) as s:
        printed = cards.print_cards(s, evacuee_ids, size=size.strip().lower(), prefill=prefill)
        audit.record(s, cli_user(), "card_print", "cli: anpi card print", [f"evacuee:{e}" for e in printed.evacuee_ids],
                     {"size": size, "cards": len(printed.evacuee_ids), "blind": len(printed.blind), "file": out.name})
        s.commit()
    try:
        write_file(out, printed.pdf)
    except OSError as exc:
        fail(f"{out}: {exc.strerror or exc}")
    note = "" if printed.key_scope == "municipality" else \
        " (signed with this laptop's own key: other shelters cannot check them until it is enrolled)"
    typer.echo(f"{len(printed.evacuee_ids)} cards written to {out} ({size}){note}")
    if printed.blind:
        typer.echo(f"{len(printed.blind)} cards printed without shelter or sealed items (閲覧制限)", err=True)


@card_app.command("verify")
@cli_errors
def card_verify_cmd(ctx: typer.Context, text: str = typer.Argument(..., help="The text the card's QR code holds.")) -> None:
    """Check a scanned card: prints the evacuee id when genuine; exits 1 when forged or altered."""
    from app.services import card_keys

    with _session(ctx) as s:
        try:
            card = card_keys.verify(s, text)
        except card_keys.CardRefused as exc:
            fail(f"card refused: {exc} ({exc.message_ja})")
            return
    typer.echo(card.evacuee_id)


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `anpi` app."""
    app.add_typer(card_app, name="card")
