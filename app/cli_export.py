"""`anpi export anpi-list …` and `anpi hq confirm …` (ARCHITECTURE.md §2): a thin face over
`app.services.anpi_list`.

    anpi export anpi-list --format csv|xlsx|pdf|pfif [--encoding utf-8-sig|cp932] --out FILE
                          [--town 町字 …] [--household 世帯番号] [--age-band 0-5|6-14|15-64|65-74|75+]
                          [--care-only] [--status in_shelter|left|confirmed_other|dead|missing|unconfirmed|safe]
    anpi hq confirm RESIDENT_ID --status confirmed_other|dead|missing|withdrawn [--method 電話|訪問|その他]
                    [--note TEXT] --by NAME

Every export is audited (who, format, filters, row count, every resident in it); 閲覧制限
residents are never in a file, only their number in the summary.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from app.cli_common import F, cli_errors, cli_user, db_path, fail

export_app = typer.Typer(no_args_is_help=True, help="Exports: the safety-confirmation list (安否確認リスト), the noticeboard list (掲示用名簿).")
hq_app = typer.Typer(no_args_is_help=True, help="Disaster HQ (本部): record 他の手段で確認 / 死亡 / 行方不明.")

def _one_line(func: F) -> F:
    """`cli_errors`, and also unwritable files and a missing PDF font as one line on stderr."""
    guarded = cli_errors(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from app.formats.fonts import FontMissing

        try:
            return guarded(*args, **kwargs)
        except FontMissing as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))

    return wrapper  # type: ignore[return-value]


@contextmanager
def _spinner(label: str) -> Iterator[None]:
    """A spinner on a terminal while a long export runs; nothing when stderr is piped."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(label):
        yield


@export_app.command("anpi-list")
@_one_line
def export_anpi_list_cmd(
    ctx: typer.Context,
    fmt: str = typer.Option(..., "--format", help="csv, xlsx, pdf or pfif."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    encoding: str = typer.Option("utf-8-sig", "--encoding", help="CSV only: utf-8-sig (Excel) or cp932."),
    town: Optional[list[str]] = typer.Option(None, "--town", help="町字 (repeatable), e.g. 高田町館の沖."),
    household: str = typer.Option("", "--household", help="世帯番号."),
    age_band: str = typer.Option("", "--age-band", help="0-5, 6-14, 15-64, 65-74 or 75+."),
    care_only: bool = typer.Option(False, "--care-only", help="Only people with 要配慮 flags."),
    status: str = typer.Option("", "--status", help="in_shelter, left, confirmed_other, dead, missing, unconfirmed or safe."),
    by: str = typer.Option("", "--by", help="Who exports (audit log); default: your login name."),
) -> None:
    """Write the safety-confirmation list of the newest registry snapshot (one row per resident)."""
    from app.db import open_shelter_db, session as db_session
    from app.services.anpi_list import AnpiFilter, export_anpi_list

    fmt = fmt.strip().lower()
    filters = AnpiFilter(towns=tuple(town or ()), household=household.strip(), age_band=age_band.strip(),
                         care_only=care_only, status=status.strip())
    engine = open_shelter_db(db_path(ctx))
    try:
        with db_session(engine) as s, _spinner(f"writing {out.name}"):
            o = export_anpi_list(s, out, fmt=fmt, encoding=encoding, filters=filters,
                                 by=by.strip() or cli_user())
            s.commit()
    finally:
        engine.dispose()
    if o.format == "pfif":
        typer.echo(f"anpi-list: {o.rows} persons written to {out} (pfif)")
        return
    enc = f", {encoding}" if o.format == "csv" else ""
    typer.echo(f"anpi-list: {o.rows:,} rows written to {out} ({o.format}{enc}); "
               f"{o.restricted_excluded} 閲覧制限 residents left out")
    if o.result and o.result.replacements:
        typer.echo(f"{len(o.result.replacements)} characters could not be written as they are and were replaced; "
                   f"report: {o.result.report_path}", err=True)
        for r in o.result.replacements[:5]:
            typer.echo(f"  row {r.row} ({r.key}) {r.field}: {r.original} ({r.code}) -> {r.replacement}", err=True)
    if o.summary_path:
        typer.echo(f"summary: {o.summary_path}")


@export_app.command("noticeboard")
@_one_line
def export_noticeboard_cmd(
    ctx: typer.Context,
    fmt: str = typer.Option(..., "--format", help="pdf or csv."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    paper: str = typer.Option("a4", "--paper", help="PDF only: a4 or a3."),
    by: str = typer.Option("", "--by", help="Who exports (audit log); default: your login name."),
) -> None:
    """Write the 掲示用名簿: people here who consented to ⑭ 公表, 五十音 order, 町字 only, never 閲覧制限."""
    from app.db import open_shelter_db, session as db_session
    from app.services import noticeboard

    engine = open_shelter_db(db_path(ctx))
    try:
        with db_session(engine) as s:
            nb, _data = noticeboard.export(s, fmt=fmt.strip().lower(), paper=paper.strip().lower(),
                                           by=by.strip() or cli_user(), out=out)
            s.commit()
    finally:
        engine.dispose()
    typer.echo(f"noticeboard: {len(nb.rows)} people written to {out} ({fmt.strip().lower()}); "
               f"{nb.left_out_restricted} left out under 閲覧制限")


@hq_app.command("confirm")
@_one_line
def hq_confirm_cmd(
    ctx: typer.Context,
    resident_id: str = typer.Argument(..., help="宛名番号."),
    status: str = typer.Option(..., "--status", help="confirmed_other, dead, missing or withdrawn (undo the last record)."),
    method: str = typer.Option("", "--method", help="電話, 訪問 or その他 (also phone, visit, other)."),
    note: str = typer.Option("", "--note", help="Free text, e.g. who answered the phone."),
    by: str = typer.Option(..., "--by", help="Who at HQ recorded it."),
) -> None:
    """Record what HQ learned of a resident by other means (phone, visit) or a death / missing report."""
    from app.db import open_shelter_db, session as db_session
    from app.services.anpi_list import HQ_STATUS_JA, record_hq_confirmation

    engine = open_shelter_db(db_path(ctx))
    try:
        with db_session(engine) as s:
            rec = record_hq_confirmation(s, resident_id, status.strip(), method, note, by.strip())
            s.commit()
    finally:
        engine.dispose()
    typer.echo(f"resident {rec.resident_id}: {rec.status} ({HQ_STATUS_JA[rec.status]}) recorded by {rec.by_user}"
               + (f" ({rec.method})" if rec.method else "") + f"; record {rec.id}")


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `anpi` app."""
    app.add_typer(export_app, name="export")
    app.add_typer(hq_app, name="hq")
