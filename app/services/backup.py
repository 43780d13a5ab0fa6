"""Verified backups of the shelter database and restoring one (ARCHITECTURE.md §2 `anpi backup` / `anpi restore`).

Why so careful: in 2011 one town's backup could not be read back for weeks. A copy only counts
once it has been read back: we write it to a temporary name beside the target, fsync it, run
`PRAGMA integrity_check` and `foreign_key_check` on the copy, and only then rename it into place
(and fsync the folder), so the target name only ever holds a complete, checked file. A SHA-256
sidecar (`<file>.sha256`, the `sha256sum` format) catches a flipped bit that SQLite's own checks
cannot see (a changed character inside a name).

Restoring refuses anything that is not a whole, readable Anpi database of a schema this version
knows, never throws the replaced database away (it stays as `<db>.before-restore-<time>`), and
starts a new sync epoch *inside the copy before it goes live*: events recorded after a restore
must not reuse the (device, epoch, seq) numbers the lost laptop may already have sent to the hub
(and certificate numbers derived from device and epoch stay unique for the same reason).

Automatic backups (`BackupScheduler`) copy the database every N minutes to a folder, typically a
USB stick, keep the newest K and record every attempt in `BackupRecord`, so the dashboard can say
when the last good copy was made or that the stick was unplugged.

We use SQLite's online backup API (`Connection.backup`, one step = one consistent
snapshot; in WAL mode the service keeps writing meanwhile) rather than copying the file, which
would miss committed data still in the -wal file or catch a page mid-write.

A backup is encrypted like the database (SQLCipher, key from the same passphrase, its own salt:
app/db_crypto.py), and inside it the laptop's Ed25519 signing key is sealed once more under a key
of its own, so a stick that is lost gives nothing away, and restoring needs the passphrase. A
plain backup made before encryption can still be restored: it is encrypted on the way in.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app import db_crypto
from app.db_crypto import DatabaseKeyError
from app.ids import aware as _aware, new_id, utcnow
from app.models import BackupRecord
from app.services.errors import AnpiError, Conflict, InvalidInput, NotFound
from app.services.registry import file_sha256
from sync.files import atomic_path, fsync_dir as _fsync_dir, fsync_file as _fsync_file
from sync.periodic import PeriodicThread

SQLITE_MAGIC = db_crypto.SQLITE_MAGIC
WRONG_KEY = "cannot decrypt it: wrong passphrase, or not an Anpi database"
#: a file without these tables is not an Anpi shelter database, whatever else it holds
ANPI_TABLES = ("alembic_version", "shelter", "staff", "registrysnapshot", "resident", "evacuee")
#: the tables whose row counts a backup reports (the ones a person would ask about)
COUNTED_TABLES = ("registrysnapshot", "resident", "evacuee", "stayevent", "matchdecision", "staff",
                  "outbox_event", "audit_entry")
PARTIAL_SUFFIX = ".partial"
STALE_PARTIAL_S = 3600  # a temp file this old belongs to a backup that was killed: clean it up


class BackupFailed(AnpiError):
    """The copy could not be written or did not verify; nothing was put at the target name."""


class RestoreRefused(InvalidInput):
    """The file is damaged, not an Anpi database, or from a newer Anpi; the database was not touched."""


class DatabaseInUse(Conflict):
    """Another program (normally `anpi serve`) has the database open."""


@dataclass
class BackupInfo:
    path: Path
    size: int
    sha256: str
    counts: dict[str, int]
    schema: str  # alembic revision of the copy
    started_at: datetime
    elapsed_s: float

    def summary(self) -> str:
        return (f"{self.size / 1e6:.1f} MB, {self.counts.get('evacuee', 0)} evacuees, "
                f"{self.counts.get('resident', 0)} residents, integrity ok")


@dataclass
class RestoreInfo:
    db_path: Path
    backup_file: Path
    kept_as: Path | None  # the replaced database, never deleted
    epoch: int  # the sync epoch the restored laptop now records events in
    sha256: str
    checksum_verified: bool  # a .sha256 sidecar was present and matched
    counts: dict[str, int]
    elapsed_s: float


@dataclass
class CheckResult:
    counts: dict[str, int]
    schema: str
    problems: list[str] = field(default_factory=list)


# --- small file-system helpers ------------------------------------------------------------------

def db_file_of(source: Engine | str | Path) -> Path:
    if isinstance(source, Engine):
        if source.dialect.name != "sqlite" or not source.url.database:
            raise InvalidInput("backups are made of the shelter's SQLite database", "バックアップできるのは避難所の SQLite データベースだけです")
        return Path(source.url.database).absolute()
    return Path(source).absolute()


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _unlink_quietly(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass


def _sqlite_side_files(path: Path) -> list[Path]:
    return [Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal")]


# --- checking a database file -------------------------------------------------------------------

def known_revisions() -> set[str]:
    """Every schema revision this version of Anpi can open (older ones are migrated on open)."""
    from alembic.script import ScriptDirectory

    from app.db import alembic_config

    return {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def check_database(path: Path) -> CheckResult:
    """Read the whole file back: SQLite header, integrity_check, foreign_key_check, our tables.

    Returns the problems found instead of raising, so callers can word their own refusal.
    """
    problems: list[str] = []
    counts: dict[str, int] = {}
    schema = ""
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except OSError as exc:
        return CheckResult(counts, schema, [f"cannot read the file: {exc.strerror or exc}"])
    if len(head) < 100:
        return CheckResult(counts, schema, ["not an SQLite database (too short)"])
    try:  # a plain file is an Anpi backup from before encryption
        con = db_crypto.connect(path, None if head.startswith(SQLITE_MAGIC) else "", timeout=5, isolation_level=None)
    except db_crypto.WrongPassphrase:
        return CheckResult(counts, schema, [WRONG_KEY])
    except db_crypto.Error as exc:
        return CheckResult(counts, schema, [f"cannot open: {exc}"])
    try:
        rows = [r[0] for r in con.execute("PRAGMA integrity_check(20)").fetchall()]
        if rows != ["ok"]:
            # SQLCipher answers in one row of many lines; a refusal is one line
            lines = [ln.strip() for r in rows for ln in str(r).splitlines() if ln.strip()]
            problems.append("integrity_check: " + "; ".join(lines[:5]))
            return CheckResult(counts, schema, problems)
        fk = con.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"foreign_key_check: {len(fk)} rows point to missing rows (first in table {fk[0][0]})")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in ANPI_TABLES if t not in tables]
        if missing:
            problems.append(f"not an Anpi shelter database (missing tables: {', '.join(missing)})")
            return CheckResult(counts, schema, problems)
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        schema = row[0] if row else ""
        for t in COUNTED_TABLES:
            if t in tables:
                counts[t] = int(con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])
    except db_crypto.Error as exc:
        problems.append(f"unreadable: {exc}")
    finally:
        con.close()
    return CheckResult(counts, schema, problems)


# --- backup -------------------------------------------------------------------------------------

def backup(source: Engine | str | Path, out: Path) -> BackupInfo:
    """Write a verified copy of the shelter database to `out` (atomically: all or nothing).

    Raises NotFound (no database), InvalidInput (`out` is the database itself) or BackupFailed
    (folder missing or unwritable — e.g. the USB stick was pulled —, or the copy did not verify).
    """
    src_path = db_file_of(source)
    if not src_path.is_file():
        raise NotFound(f"database {src_path} does not exist", f"データベース {src_path} がありません")
    out = Path(out).absolute()
    if out.exists() and out.resolve() == src_path.resolve():
        raise InvalidInput(f"{out} is the database itself; choose another file", "バックアップ先がデータベースそのものです", "out")
    folder = out.parent
    if not folder.is_dir():
        raise BackupFailed(f"folder {folder} does not exist (is the USB stick plugged in?)",
                           f"バックアップ先フォルダ {folder} が見つかりません (USBメモリが挿さっていますか?)")
    started, t0 = utcnow(), time.perf_counter()
    tmp = folder / f".{out.name}.{new_id()}{PARTIAL_SUFFIX}"
    try:
        try:
            _copy_sealed(src_path, tmp)
        except db_crypto.Error as exc:
            raise BackupFailed(f"could not copy {src_path.name}: {exc}", f"データベースを複製できませんでした: {exc}") from None
        _fsync_file(tmp)
        check = check_database(tmp)
        if check.problems:
            raise BackupFailed(f"the copy did not verify: {check.problems[0]}",
                               f"複製の検査に失敗しました (元のデータベースが壊れている可能性があります): {check.problems[0]}")
        sha, size = file_sha256(tmp), tmp.stat().st_size
        # the old sidecar goes first: a sidecar beside the wrong file would make a good copy look damaged
        _unlink_quietly(sidecar_of(out))
        os.replace(tmp, out)
        _fsync_dir(folder)
        _write_sidecar(out, sha)
        _fsync_dir(folder)
    except OSError as exc:
        raise BackupFailed(f"could not write {out}: {exc.strerror or exc}",
                           f"{out} に書き込めませんでした ({exc.strerror or exc})") from None
    finally:
        _unlink_quietly(tmp, *_sqlite_side_files(tmp))
    return BackupInfo(out, size, sha, check.counts, check.schema, started, time.perf_counter() - t0)


def _copy_sealed(src_path: Path, tmp: Path) -> None:
    """The online copy into a new encrypted file (its own salt), then the signing key sealed in it."""
    secret = db_crypto.passphrase(src_path)
    src = db_crypto.connect(src_path, timeout=30)
    try:
        dst = db_crypto.connect(tmp, db_crypto.key_for(tmp, secret))
        try:
            src.backup(dst)  # pages=-1: the whole database in one step, one consistent snapshot
            # one self-contained file (no -wal beside it), readable read-only from a stick
            dst.execute("PRAGMA journal_mode=DELETE").fetchall()
            _reseal_signing_key(dst, lambda key: db_crypto.seal_secret(key, secret))
        finally:
            dst.close()
    finally:
        src.close()


def _reseal_signing_key(con: db_crypto.Connection, change: Callable[[str], str]) -> None:
    """Seal (backup) or unseal (restore) the laptop's signing key in a copy; a copy without one is left alone."""
    try:
        row = con.execute("SELECT signing_key FROM sync_device WHERE id = 1").fetchone()
    except db_crypto.OperationalError:  # no sync_device table: never enrolled, nothing to seal
        return
    if row is None or not row[0]:
        return
    new = change(row[0])
    if new != row[0]:
        con.execute("UPDATE sync_device SET signing_key = ? WHERE id = 1", (new,))
        con.commit()


def _write_sidecar(out: Path, sha: str) -> None:
    with atomic_path(sidecar_of(out), suffix=PARTIAL_SUFFIX) as tmp:
        tmp.write_text(f"{sha}  {out.name}\n", encoding="ascii", newline="\n")


def read_sidecar(path: Path) -> str | None:
    """The SHA-256 written beside a backup, or None when there is none (copied without it)."""
    side = sidecar_of(path)
    try:
        text = side.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    digest = text.split()[0].lower() if text else ""
    return digest if len(digest) == 64 else ""


def record_attempt(session: Session, *, kind: str, path: Path | str, info: BackupInfo | None = None,
                   error: AnpiError | Exception | None = None) -> BackupRecord:
    """Store one backup attempt (caller commits). The message is for the dashboard (Japanese)."""
    if info is not None:
        rec = BackupRecord(at=info.started_at, path=str(info.path), size=info.size, sha256=info.sha256, ok=True,
                           message=f"{info.counts.get('evacuee', 0)}人の避難者, 台帳 {info.counts.get('resident', 0)}人, 検査OK",
                           kind=kind)
    else:
        msg = error.message_ja if isinstance(error, AnpiError) else f"{type(error).__name__}: {error}"
        rec = BackupRecord(path=str(path), ok=False, message=msg[:500], kind=kind)
    session.add(rec)
    session.flush()
    return rec


# --- restore ------------------------------------------------------------------------------------

def _live_identity(db_path: Path) -> tuple[str, int] | None:
    """(device_id, epoch) of the database being replaced, if it can still be read."""
    if not db_path.is_file():
        return None
    try:
        con = db_crypto.connect(db_path, timeout=5)
        try:
            row = con.execute("SELECT device_id, epoch FROM sync_device WHERE id = 1").fetchone()
        finally:
            con.close()
    except (db_crypto.Error, DatabaseKeyError):
        return None  # a damaged database is exactly why people restore
    return (str(row[0]), int(row[1])) if row else None


def _start_new_epoch(path: Path, live: tuple[str, int] | None) -> int:
    """Migrate the copy to this version and give it a sync epoch no earlier stream of this device used."""
    from app.db import open_shelter_db
    from sync import outbox

    engine = open_shelter_db(path)
    try:
        with Session(engine) as s:
            # provisional until the hub grants one at the next sync: two laptops restored from
            # this same file must never number their new events in one stream
            epoch = outbox.start_new_epoch(s, restored=True)
            dev = outbox.get_device(s)
            # the live laptop may have moved on (an earlier restore) past the epoch in the backup
            while live and dev is not None and dev.device_id == live[0] and epoch <= live[1]:
                epoch = outbox.start_new_epoch(s)
            s.commit()
    finally:
        engine.dispose()
    # fold the -wal back in: the file we move into place must be complete on its own
    con = db_crypto.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        con.execute("PRAGMA journal_mode=DELETE").fetchall()
    finally:
        con.close()
    return epoch


def _unseal_in(path: Path) -> None:
    """The signing key back in clear inside the (encrypted) copy, with the passphrase that opened it."""
    if db_crypto.is_plain_sqlite(path):
        return  # a backup from before encryption: nothing was sealed
    secret = db_crypto.passphrase(path)
    con = db_crypto.connect(path, isolation_level=None)
    try:
        _reseal_signing_key(con, lambda v: db_crypto.unseal_secret(v, secret) if db_crypto.is_sealed(v) else v)
    finally:
        con.close()


def _aside_name(db_path: Path, now: datetime) -> Path:
    base = db_path.with_name(f"{db_path.name}.before-restore-{now.astimezone():%Y%m%d-%H%M%S}")
    candidate, n = base, 1
    while any(Path(f"{candidate}{s}").exists() for s in ("", "-wal", "-shm")):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _in_use(db_path: Path, exc: Exception) -> None:
    if "locked" in str(exc) or "busy" in str(exc):
        raise DatabaseInUse(f"{db_path} is in use (stop `anpi serve` first)",
                            "データベースが使用中です（安否システムを止めてから復元してください）") from None


def _lock_live(db_path: Path) -> db_crypto.Connection | None:
    """The live database, out of WAL and exclusively locked; None when it cannot be read (a damaged
    file, or one under another passphrase): that one is moved aside exactly as it is, -wal and all."""
    try:
        lock = db_crypto.connect(db_path, timeout=2, isolation_level=None)
    except db_crypto.OperationalError as exc:
        _in_use(db_path, exc)
        return None
    except (db_crypto.Error, DatabaseKeyError):
        return None
    try:
        lock.execute("PRAGMA journal_mode=DELETE").fetchall()  # folds the -wal into the file
        lock.execute("BEGIN EXCLUSIVE")  # nobody may open it until the new file is in place
    except db_crypto.OperationalError as exc:
        lock.close()
        _in_use(db_path, exc)
        return None
    except db_crypto.DatabaseError:
        lock.close()
        return None
    return lock


def _swap_in(db_path: Path, new_file: Path, now: datetime) -> Path | None:
    """Put `new_file` at `db_path`; the old database (with its -wal, if unreadable) is kept aside.

    While the service or anyone else has the database open, SQLite refuses to leave WAL mode:
    that is how we know not to pull the file from under a running `anpi serve`.
    """
    if not db_path.exists():
        os.replace(new_file, db_path)
        _fsync_dir(db_path.parent)
        return None
    aside = _aside_name(db_path, now)
    lock = _lock_live(db_path)
    try:
        if os.name == "nt" and lock is not None:  # Windows cannot rename a file that is open
            if lock.in_transaction:
                lock.rollback()
            lock.close()
            lock = None
        try:
            os.link(db_path, aside)  # the old file keeps existing under both names: never a moment without a database
        except OSError:
            os.replace(db_path, aside)  # file systems without hard links
        for side in ("-wal", "-shm"):
            p = Path(f"{db_path}{side}")
            if p.exists():  # only when the old database was unreadable: keep its log with it
                os.replace(p, Path(f"{aside}{side}"))
        os.replace(new_file, db_path)
        _fsync_dir(db_path.parent)
    finally:
        if lock is not None:
            if lock.in_transaction:
                lock.rollback()
            lock.close()
    return aside


def restore(db_path: str | Path, backup_file: str | Path, *, now: datetime | None = None) -> RestoreInfo:
    """Replace the shelter database by a backup after checking it from end to end.

    Raises NotFound, RestoreRefused (damaged, not Anpi, newer schema, checksum mismatch; nothing
    changed) or DatabaseInUse. The replaced database is kept as `<db>.before-restore-<time>`.
    """
    t0 = time.perf_counter()
    db_path, backup_file = Path(db_path).absolute(), Path(backup_file).absolute()
    if not backup_file.is_file():
        raise NotFound(f"backup file {backup_file} does not exist", f"バックアップファイル {backup_file} がありません")
    if db_path.exists() and db_path.resolve() == backup_file.resolve():
        raise InvalidInput(f"{backup_file} is the database itself", "復元元がデータベースそのものです", "file")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    name = backup_file.name

    def refuse(why: str, why_ja: str) -> RestoreRefused:
        return RestoreRefused(f"{name}: {why}; nothing was changed", f"{name}: {why_ja}。何も変更していません", "file")

    # work on our own copy beside the database: what we check is exactly what goes live
    tmp = db_path.with_name(f".{db_path.name}.restore-{new_id()}{PARTIAL_SUFFIX}")
    try:
        try:
            shutil.copyfile(backup_file, tmp)
            _fsync_file(tmp)
        except OSError as exc:
            raise refuse(f"cannot copy it ({exc.strerror or exc})", f"ファイルを読み込めません ({exc.strerror or exc})") from None
        sha = file_sha256(tmp)
        expected = read_sidecar(backup_file)
        if expected is not None and expected != sha:
            raise refuse(f"SHA-256 {sha[:12]}… does not match {sidecar_of(backup_file).name} ({(expected or '?')[:12]}…): "
                         "the file was damaged after it was written", "チェックサムが一致しません (ファイルが壊れています)")
        check = check_database(tmp)
        if check.problems:
            first = check.problems[0]
            if first == WRONG_KEY:
                raise refuse(f"{first} (the passphrase of the laptop that made the backup is needed: "
                             f"{db_crypto.PASSPHRASE_ENV})", "パスフレーズが違います (バックアップを作った時のパスフレーズが必要です)")
            if first.startswith("not an Anpi") or first.startswith("not an SQLite"):
                raise refuse(first, "Anpi のバックアップファイルではありません")
            raise refuse(f"damaged ({first})", "ファイルが壊れています")
        if not check.schema:
            raise refuse("not an Anpi shelter database (no schema version)", "Anpi のバックアップファイルではありません")
        if check.schema not in known_revisions():
            raise refuse(f"made by a newer version of Anpi (schema {check.schema!r}); update Anpi first",
                         f"新しいバージョンの Anpi で作られたファイルです (スキーマ {check.schema})。Anpi を更新してください")
        _unseal_in(tmp)
        epoch = _start_new_epoch(tmp, _live_identity(db_path))
        _fsync_file(tmp)
        kept = _swap_in(db_path, tmp, now or utcnow())
    finally:
        _unlink_quietly(tmp, *_sqlite_side_files(tmp))
    return RestoreInfo(db_path, backup_file, kept, epoch, sha, expected is not None, check.counts,
                       time.perf_counter() - t0)


# --- automatic backups --------------------------------------------------------------------------

def backup_name(db_path: Path, at: datetime) -> str:
    """`<db stem>-backup-YYYYmmddTHHMMSSZ.db`: UTC, so names sort by time across a DST change or a moved clock zone."""
    return f"{db_path.stem}-backup-{at.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}.db"


def rotate(folder: Path, db_path: Path, keep: int, *, just_made: Path) -> list[Path]:
    """Delete all but the newest `keep` backups of this database in `folder` (files on the stick,
    not database rows). Runs only after a verified backup and never deletes that one, so the
    folder can never end up without a good copy."""
    keep = max(1, keep)
    pattern = f"{db_path.stem}-backup-*.db"
    files = sorted(p for p in folder.glob(pattern) if p.is_file())
    removed: list[Path] = []
    for p in files[:-keep] if len(files) > keep else []:
        if p == just_made:
            continue
        _unlink_quietly(p, sidecar_of(p))
        removed.append(p)
    cutoff = time.time() - STALE_PARTIAL_S
    for p in folder.glob(f".{db_path.stem}-backup-*{PARTIAL_SUFFIX}"):
        try:
            if p.stat().st_mtime < cutoff:  # left by a backup that was killed (power cut)
                _unlink_quietly(p)
        except OSError:
            pass
    return removed


SessionFactory = Callable[[], Session]


class BackupScheduler(PeriodicThread):
    """A daemon thread that backs the database up to `folder` every `interval_minutes` (first at start).

    A failing folder (USB stick unplugged, full, read-only) is recorded as a failed attempt and
    retried next time; it never stops the service. `run_once` is also what "今すぐバックアップ" calls.
    """

    thread_name = "anpi-backup"

    def __init__(self, db_path: Path, session_factory: SessionFactory, folder: Path, *, interval_minutes: float = 10,
                 keep: int = 24) -> None:
        super().__init__(max(1.0, float(interval_minutes) * 60))
        self.db_path = Path(db_path).absolute()
        self.session_factory = session_factory
        self.folder = Path(folder)
        self.keep = max(1, int(keep))
        self.last: BackupRecord | None = None
        self.runs = 0
        self._lock = threading.Lock()

    def stop(self, timeout: float = 30.0) -> None:  # a backup in progress may take a while to finish
        super().stop(timeout)

    def tick(self) -> None:
        self.run_once("auto")

    def run_once(self, kind: str = "auto") -> BackupRecord:
        """One backup into the folder, rotation after a good one, and its record in the live database."""
        with self._lock:
            out = self.folder / backup_name(self.db_path, utcnow())
            info: BackupInfo | None = None
            error: Exception | None = None
            try:
                info = backup(self.db_path, out)
                rotate(self.folder, self.db_path, self.keep, just_made=info.path)
            except Exception as exc:  # noqa: BLE001 - the service must keep running whatever the stick does
                error = exc
            self.runs += 1
            self.last_error = None if error is None else str(error)
            try:
                with self.session_factory() as s:
                    rec = record_attempt(s, kind=kind, path=out, info=info, error=error)
                    s.commit()
                    s.refresh(rec)
                    s.expunge(rec)
            except Exception as exc:  # noqa: BLE001 - e.g. the database itself is failing
                print(f"anpi: could not record the backup attempt: {exc}", file=sys.stderr)
                rec = BackupRecord(path=str(out), ok=info is not None, message=str(error or ""), kind=kind)
            if error is not None:
                print(f"anpi: backup to {self.folder} failed: {error}", file=sys.stderr)
            self.last = rec
            return rec



# --- what the dashboard shows ---------------------------------------------------------------------

def backup_overview(session: Session, *, folder: Path | None, interval_minutes: float,
                    now: datetime | None = None) -> dict[str, Any]:
    """The last good backup, the last attempt and the warnings a shelter lead must see.

    A backup counts as too old after three missed intervals (at least 30 minutes): one slow
    or failed run is normal, three mean nobody is looking after the stick.
    """
    now = now or utcnow()
    last_ok = session.exec(select(BackupRecord).where(BackupRecord.ok == True)  # noqa: E712
                           .order_by(BackupRecord.at.desc()).limit(1)).first()  # type: ignore[attr-defined]
    last = session.exec(select(BackupRecord).order_by(BackupRecord.at.desc()).limit(1)).first()  # type: ignore[attr-defined]
    stale_after = timedelta(minutes=max(30.0, 3 * float(interval_minutes)))
    warnings: list[str] = []
    if last_ok is None:
        warnings.append("正常なバックアップがまだありません")
    elif now - _aware(last_ok.at) > stale_after:
        hours = (now - _aware(last_ok.at)).total_seconds() / 3600
        warnings.append(f"最後の正常なバックアップから{hours:.0f}時間以上たっています" if hours >= 1
                        else f"最後の正常なバックアップから{int(stale_after.total_seconds() // 60)}分以上たっています")
    if last is not None and not last.ok:
        warnings.append(f"最後のバックアップに失敗しました: {last.message}")
    if folder is None:
        warnings.append("自動バックアップが設定されていません（システム担当者にバックアップ先フォルダの設定を依頼してください）")

    def as_dict(r: BackupRecord | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {"at": _aware(r.at), "path": r.path, "folder": str(Path(r.path).parent) if r.path else "",
                "file": Path(r.path).name if r.path else "", "size": r.size, "ok": r.ok, "message": r.message,
                "kind": r.kind}

    return {"last_ok": as_dict(last_ok), "last": as_dict(last), "warnings": warnings,
            "folder": str(folder) if folder else None, "interval_minutes": interval_minutes}
