"""Settings of the layer below ``app/`` (sync, the hub's store and matching jobs), and the one
pattern every ``ANPI_*`` setting is declared with.

The app's settings are ``app.config.Settings``; these are the ones ``sync/`` itself reads, and
``sync/`` never imports ``app/`` (ARCHITECTURE.md §8), so they are declared here with the same
helper.  Together the two classes are the only places that read ``ANPI_*`` variables
(``tests/app/test_settings.py`` checks it); ``python -m app.config --markdown`` prints the table of
both for README.md.

A setting is one dataclass field::

    port: int = setting("ANPI_PORT", 8080, "port of `anpi serve`")

The type annotation says how the text is read (int, float, str, bool, Path, ``X | None``);
``mb=True`` reads megabytes (decimals allowed) into bytes; an unset or empty variable gives the
default; ``secret=True`` keeps the value out of ``repr`` and of the README's default column.
"""
from __future__ import annotations

import functools
import os
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def setting(env: str, default: Any, help: str, *, mb: bool = False, secret: bool = False) -> Any:  # noqa: A002
    """A settings field read from ``env`` (see module docstring)."""
    if mb:
        default = int(default * 1024 * 1024)
    return field(default=default, repr=not secret, metadata={"env": env, "help": help, "mb": mb, "secret": secret})


def _parse(kind: Any, raw: str, mb: bool) -> Any:
    if mb:
        return int(float(raw) * 1024 * 1024)
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if args:  # X | None
        kind = args[0]
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind in (int, float, Path, str):
        return kind(raw)
    raise TypeError(f"no reader for settings of type {kind!r}")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a settings class: resolving them costs more than reading the
    environment, and services read their settings on every call (so a changed variable counts)."""
    return typing.get_type_hints(cls)


def read_env(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """An instance of the settings dataclass ``cls`` from the environment (or ``environ``)."""
    env = os.environ if environ is None else environ
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        name = f.metadata.get("env")
        raw = env.get(name) if name else None
        if raw is None or raw == "":
            continue
        try:
            values[f.name] = _parse(hints[f.name], raw, f.metadata.get("mb", False))
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a valid {hints[f.name]}") from None
    return cls(**values)


def describe(cls: type) -> list[dict[str, str]]:
    """name, default, meaning of every setting of ``cls`` (for the README table)."""
    out = []
    for f in fields(cls):
        if not f.metadata.get("env"):
            continue
        default = "" if f.default is MISSING or f.default is None else f.default
        if f.metadata.get("mb"):
            default = f"{default / 1024 / 1024:g} MB"
        if f.metadata.get("secret"):
            default = ""
        out.append({"name": f.metadata["env"], "default": str(default), "meaning": f.metadata["help"]})
    return out


@dataclass(frozen=True)
class SyncSettings:
    """What ``sync/`` reads: the hub's database, its data key, its background jobs, test hooks."""

    hub_database_url: str | None = setting(
        "ANPI_HUB_DATABASE_URL", None, "hub database: `sqlite:///path` or `postgresql://…` (every hub command)")
    hub_data_key: str | None = setting(
        "ANPI_HUB_DATA_KEY", None, "hub data key (base64) that seals registry backups at rest", secret=True)
    hub_data_key_file: Path | None = setting(
        "ANPI_HUB_DATA_KEY_FILE", None, "file holding the hub data key (`anpi hub data-key create`)")
    hub_crossmatch: str = setting(
        "ANPI_HUB_CROSSMATCH", "inline", "`off`: the hub server does not run cross-town matching after pushes")
    hub_cross_review_floor: float = setting(
        "ANPI_HUB_CROSS_REVIEW_FLOOR", 0.5, "cross-town candidates below this probability are not sent to review")
    hub_matcher_cache: int = setting(
        "ANPI_HUB_MATCHER_CACHE", 4, "registry matchers the hub keeps in memory for cross-town matching")
    hub_records_cache: int = setting(
        "ANPI_HUB_RECORDS_CACHE", 8, "opened registry backups the hub keeps in memory")
    hub_crash_after_commit: int = setting(
        "ANPI_HUB_CRASH_AFTER_COMMIT", 0, "tests only: the hub process exits after this many committed pushes")
    sync_crash_after_push: int = setting(
        "ANPI_SYNC_CRASH_AFTER_PUSH", 0, "tests only: the laptop's sync exits after this many pushes")
    hub_urls: str = setting(
        "ANPI_HUB_URLS", "", "every URL of this hub (primary and standby, comma-separated), handed to laptops at enrolment")
    pg_bin: Path | None = setting(
        "ANPI_PG_BIN", None, "folder of the PostgreSQL server tools for `anpi hub backup|restore` (unset: the newest /usr/lib/postgresql/*/bin)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SyncSettings":
        return read_env(cls, environ)
