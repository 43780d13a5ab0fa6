"""Registry backups between the hub and shelter laptops: the face-level glue of app/ and sync/.

``sync/`` may not import ``app/`` (ARCHITECTURE.md §8), yet a registry backup at the hub must be read
with *exactly* the shelter's formats and checks, and a pulled backup must land in a laptop
through the shelter's normal import.  So the two sides meet here, in a face module:

- :func:`parse_for_hub` runs ``app.services.registry.import_registry`` into a throw-away
  SQLite shelter database (same profiles, encodings, gaiji maps, all-or-nothing checks that
  name file, line and field) and returns the file's bytes plus the parsed records, which
  :func:`sync.hub.registry.store_snapshot` seals and stores;
- :func:`pull_into_shelter` fetches the newest backup of the laptop's municipality
  (:func:`sync.client.fetch_registry`: hub signature, device box, SHA-256 checked) and imports
  it through ``import_registry`` with the options it was imported with at the hub.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.engine import Engine

from app.db import open_shelter_db
from app.formats.tables import raw_csv_writer
from app.db_crypto import random_key
from app.services.registry import ImportResult, file_sha256, import_registry
from sync import client, registry_base
from sync.hub import registry as hub_registry

BUILTIN_PROFILES = ("auto", "anpi", "kihon")


@dataclass
class ParsedRegistry:
    data: bytes
    sha256: str
    source_file: str
    as_of: str
    encoding: str
    profile: str
    options: dict[str, Any]
    gaiji: dict[str, str]
    records: list[tuple[Any, ...]]


def parse_for_hub(path: Path, *, profile: str = "auto", encoding: str = "auto", gaiji_map: Path | None = None,
                  as_of: date | None = None, progress: Callable[[int], None] | None = None) -> ParsedRegistry:
    """Check and parse a registry file the shelter's way; raises the shelter import's errors
    (``FileFormatError`` naming file, line and field) and stores nothing."""
    path = Path(path)
    profile_toml = None
    if profile not in BUILTIN_PROFILES:
        profile_path = Path(profile)
        if profile_path.is_file():
            profile_toml = profile_path.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="anpi-hub-parse-") as tmp:
        # the hub has no shelter passphrase: a key that lives only in memory while the file exists
        engine = open_shelter_db(Path(tmp) / "parse.db", key=random_key())
        try:
            result = import_registry(engine, path, profile=profile, encoding=encoding, gaiji_map=gaiji_map,
                                     as_of=as_of, imported_by="hub", progress=progress)
            records = _records(engine, result)
        finally:
            engine.dispose()
    snap = result.snapshot
    data = path.read_bytes()
    sha = file_sha256(path)
    if sha != snap.sha256:
        raise hub_registry.RegistryError(f"{path.name} changed while it was being read; try again")
    options = {"profile": profile if profile_toml is None else "custom", "profile_name": snap.profile,
               "profile_toml": profile_toml, "encoding": snap.encoding, "as_of": snap.as_of.isoformat(),
               "gaiji_map": dict(snap.gaiji_map or {})}
    return ParsedRegistry(data, sha, path.name, snap.as_of.isoformat(), snap.encoding, snap.profile, options,
                          dict(snap.gaiji_map or {}), records)


def _records(engine: Engine, result: ImportResult) -> list[tuple[Any, ...]]:
    cols = ", ".join(f"COALESCE({c}, '')" if c != "restricted" else c for c in hub_registry.RECORD_FIELDS)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"SELECT {cols} FROM resident WHERE snapshot_id = ? ORDER BY line_no", (result.snapshot.id,))
        return [_fix(r) for r in cur.fetchall()]
    finally:
        raw.close()


_RESTRICTED = hub_registry.RECORD_FIELDS.index("restricted")


def _fix(row: tuple[Any, ...]) -> tuple[Any, ...]:
    out = list(row)
    out[_RESTRICTED] = bool(out[_RESTRICTED])
    return tuple(out)


def store_at_hub(engine: Engine, key: hub_registry.DataKey, municipality: str | None, path: Path, *,
                 profile: str = "auto", encoding: str = "auto", gaiji_map: Path | None = None,
                 as_of: date | None = None, imported_by: str = "",
                 progress: Callable[[int], None] | None = None) -> hub_registry.SnapshotInfo:
    """``anpi hub registry import``: parse the shelter's way, then seal and store per municipality."""
    from sync.hub.store import resolve_municipality

    with engine.connect() as conn:  # refuse an unknown municipality before the (long) parse
        m = resolve_municipality(conn, municipality)
    parsed = parse_for_hub(path, profile=profile, encoding=encoding, gaiji_map=gaiji_map, as_of=as_of,
                           progress=progress)
    return hub_registry.store_snapshot(
        engine, key, m, data=parsed.data, source_file=parsed.source_file, sha256=parsed.sha256,
        as_of=parsed.as_of, encoding=parsed.encoding, profile=parsed.profile, options=parsed.options,
        records=parsed.records, gaiji=parsed.gaiji, imported_by=imported_by or "hub")


# ---- on the laptop ------------------------------------------------------------------------------
@dataclass
class PullOutcome:
    manifest: dict[str, Any]
    result: ImportResult | None  # None: this laptop already had exactly that file
    already: str = ""
    via: str = "file"  # "diff": only the difference crossed the link (sync.client.PulledRegistry.via)


def pull_into_shelter(engine: Engine, session_factory: Any, hub_url: str | None = None, *, http: Any = None,
                      progress: Callable[[int], None] | None = None) -> PullOutcome:
    """``anpi registry pull``: fetch (verified) and import through the shelter's own path; with the
    sealed copy of the last pulled file, only the difference to the newest crosses the link."""
    from app.services.registry import newest_snapshot

    with session_factory() as s:
        newest = newest_snapshot(s)
        have = newest.sha256 if newest is not None else None
    base_path = _base_path(engine)
    base = registry_base.load(session_factory, base_path) if base_path is not None else None
    keep = registry_base.partial_for(Path(str(engine.url.database))) if base_path is not None else None
    pulled = client.fetch_registry(session_factory, hub_url, http=http, have=have, base=base, keep=keep)
    m = pulled.manifest
    if pulled.unchanged:
        return PullOutcome(m, None, "this laptop already holds the hub's newest snapshot")
    outcome = _import_pulled(engine, pulled, progress)
    if base_path is not None:  # the next pull may then receive only the difference
        registry_base.save(session_factory, base_path, pulled.data)
    return outcome


def _base_path(engine: Engine) -> Path | None:
    """Where this laptop keeps its sealed copy of the last pulled file (next to its database file)."""
    name = engine.url.database
    return registry_base.path_for(Path(name)) if name and name != ":memory:" else None


def _import_pulled(engine: Engine, pulled: client.PulledRegistry,
                   progress: Callable[[int], None] | None) -> PullOutcome:
    """The verified file through the shelter's own import, with the options it was imported with at the hub."""
    from app.services.errors import AlreadyDone

    m = pulled.manifest
    opts = m.get("options") or {}
    with tempfile.TemporaryDirectory(prefix="anpi-pull-") as tmp:
        folder = Path(tmp)
        name = Path(str(m.get("source_file") or "registry.csv")).name or "registry.csv"
        path = folder / name
        path.write_bytes(pulled.data)
        gaiji_path = None
        if opts.get("gaiji_map"):
            gaiji_path = folder / "gaiji_map.csv"
            with gaiji_path.open("w", encoding="utf-8", newline="") as fh:
                w = raw_csv_writer(fh)  # read back by our importer: every value as it is
                w.writerow(["code", "char"])
                for ch, std in opts["gaiji_map"].items():
                    w.writerow([f"U+{ord(ch):04X}" if len(ch) == 1 else ch, std])
        profile = str(opts.get("profile") or "auto")
        if profile == "custom" and opts.get("profile_toml"):
            prof = folder / "profile.toml"
            prof.write_text(opts["profile_toml"], encoding="utf-8")
            profile = str(prof)
        as_of = date.fromisoformat(m["as_of"]) if m.get("as_of") else None
        try:
            result = import_registry(engine, path, profile=profile, encoding=str(opts.get("encoding") or "auto"),
                                     gaiji_map=gaiji_path, as_of=as_of, imported_by=f"hub:{m.get('hub_id', '')}",
                                     progress=progress)
        except AlreadyDone as exc:
            return PullOutcome(m, None, str(exc), via=pulled.via)
    return PullOutcome(m, result, via=pulled.via)


def default_session_factory(db_path: Path) -> tuple[Engine, Any]:
    from sqlmodel import Session

    engine = open_shelter_db(db_path)
    return engine, (lambda: Session(engine))


__all__ = ["parse_for_hub", "store_at_hub", "pull_into_shelter", "ParsedRegistry", "PullOutcome"]
