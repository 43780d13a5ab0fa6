"""What every `anpi` command module shares: one-line errors, the database option, who is running.

Why a module of its own: `app.cli` mounts the command modules (`cli_admin`, `cli_export`,
`cli_certificate`, `cli_pfif`, `cli_backup`, …) while it is itself still being imported, so they
cannot import these helpers from `app.cli`; they all import them from here instead.
"""

from __future__ import annotations

import functools
import getpass
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from sqlalchemy.engine import Engine

from app.db import open_shelter_db
from app.db_crypto import DatabaseKeyError
from app.formats.errors import FileFormatError
from app.services.errors import AlreadyDone, AnpiError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def cli_errors(func: F) -> F:
    """Turn our exceptions into one line on stderr and an exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AlreadyDone as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(0) from None
        except FileFormatError as exc:
            typer.echo(f"error: {exc}", err=True)
            for p in exc.problems[1:10]:
                typer.echo(f"  {p}", err=True)
            if exc.total > 10:
                typer.echo(f"  … {exc.total - 10} more", err=True)
            raise typer.Exit(1) from None
        except (AnpiError, DatabaseKeyError) as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def db_path(ctx: typer.Context) -> Path:
    """The shelter database of this invocation (`--db`, `ANPI_DB`, default ./anpi.db). `ANPI_DB` is
    read here too for command groups run on their own (`python -m app.cli_sync …`)."""
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    from app.config import Settings

    return Path(obj.get("db_path") or Settings.from_env().db_path)


def engine_for(ctx: typer.Context) -> Engine:
    """The shelter database, opened with the passphrase (ANPI_PASSPHRASE or typed); a missing or
    wrong passphrase is one line on stderr, never a traceback."""
    try:
        return open_shelter_db(db_path(ctx))
    except DatabaseKeyError as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


def os_user() -> str | None:
    """The login name of whoever runs the command, if the system has one (containers may not)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return None


def cli_user() -> str:
    """How the audit log names a person working on the command line."""
    name = os_user()
    return f"cli:{name}" if name else "cli"


def cli_audit(engine: Engine, action: str, screen: str, subjects: Iterable[str] = (),
              detail: dict[str, Any] | None = None) -> None:
    """Write one audit entry for a command that has no session of its own (commits it)."""
    from app.db import session as db_session
    from app.services import audit

    with db_session(engine) as s:
        audit.record(s, cli_user(), action, screen, subjects, detail)
        s.commit()


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int], None]]:
    """A live row counter on a terminal; nothing when stderr is piped."""
    if not sys.stderr.isatty():
        yield lambda _n: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description} {task.completed:,} rows"), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda n: bar.update(task, completed=n)
