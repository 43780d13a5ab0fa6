"""Registry snapshot import (住民基本台帳 backup): one file becomes one snapshot, all or nothing.

Why all or nothing: a half-imported registry would make some residents look "missing" when they
are only absent from the file. Any bad row therefore refuses the whole file, the message names
the file, line and field, and the database stays exactly as it was. Only when someone asks for it
(`--quarantine-bad-rows`, for a disaster where a backup with a few bad rows is all there is) are
the good rows loaded, the bad ones written to a report, and the snapshot marked incomplete.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from app.config import Settings
from app import db_crypto
from app.formats.errors import FileFormatError, RowProblem
from app.formats.gaiji import read_gaiji_map
from app.formats.registry_file import RegistryReader, RegistryRow
from app.ids import utcnow
from app.models import RegistrySnapshot, Resident
from app.services.errors import AlreadyDone, InvalidInput
from matching.dates import DateError, parse_date
from matching.person import parse_sex, stored_keys

MAX_PROBLEMS = 50
# Dates of birth repeat thousands of times in a registry: parse each distinct text once.
_parse_birth = lru_cache(maxsize=100_000)(parse_date)
BATCH = 5000
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "有", "あり", "○", "〇", "対象"})
UNKNOWN_SEX = frozenset({"", "0", "9", "不明", "不詳"})

Progress = Callable[[int], None]

_RESIDENT_COLUMNS = [
    "snapshot_id", "line_no", "resident_id", "household_id", "family_name", "given_name",
    "family_name_kana", "given_name_kana", "alpha_name", "birth_date", "birth_raw", "sex",
    "relationship", "postal_code", "address", "restricted",
    "k_family_variant", "k_given_variant", "k_family_kana", "k_given_kana", "k_alpha", "k_town", "k_house", "raw_line",
]
_INSERT = (f"INSERT INTO resident ({', '.join(_RESIDENT_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _RESIDENT_COLUMNS)})")


@dataclass
class ImportResult:
    snapshot: RegistrySnapshot
    elapsed_s: float
    workers: int = 1  # processes that checked the rows (2 for a large file)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _flag(text: str) -> bool:
    return text.strip().lower() in TRUE_WORDS


def _row_values(row_fields: dict[str, str], file: str, line: int, problems: list[RowProblem],
                gaiji: dict[str, str]) -> tuple | None:
    """Validate one row and compute its stored values; append problems instead of raising."""
    f = row_fields
    rid = f.get("resident_id", "")
    if not rid:
        problems.append(RowProblem(file, line, "宛名番号", "resident id (宛名番号) is empty", "宛名番号が空です"))
        return None
    birth_raw = f.get("birth_date", "")
    birth: date | None = None
    if not _flag(f.get("birth_date_unknown", "")):
        try:
            parsed = _parse_birth(birth_raw)
        except DateError as exc:
            problems.append(RowProblem(file, line, "生年月日", f"impossible date {birth_raw!r}: {exc}",
                                       f"生年月日 {birth_raw} は存在しない日付です", birth_raw))
            return None
        if parsed.kind == "day":
            birth = parsed.value
        elif parsed.kind not in ("unknown", "empty", "year"):
            problems.append(RowProblem(file, line, "生年月日", f"not a date of birth: {birth_raw!r}",
                                       f"生年月日 {birth_raw} を読み取れません", birth_raw))
            return None
    sex_raw = f.get("sex", "")
    sex = parse_sex(sex_raw)
    if not sex and sex_raw.strip() not in UNKNOWN_SEX:
        problems.append(RowProblem(file, line, "性別", f"unknown sex value {sex_raw!r} (use 1/2, 男/女, M/F)",
                                   f"性別 {sex_raw} を読み取れません (1/2, 男/女)", sex_raw))
        return None
    family, given = f.get("family_name", ""), f.get("given_name", "")
    family_kana, given_kana = f.get("family_name_kana", ""), f.get("given_name_kana", "")
    alpha, address = f.get("alpha_name", ""), f.get("address", "")
    return (
        rid, f.get("household_id", ""), family, given, family_kana, given_kana, alpha,
        birth.isoformat() if birth else None, birth_raw, sex, f.get("relationship", ""),
        f.get("postal_code", ""), address, _flag(f.get("restricted", "")),
        *stored_keys(family, given, family_kana, given_kana, alpha, address, gaiji),
    )


def _checked_rows(reader: RegistryReader, file: str, gaiji: dict[str, str],
                  quarantine: list[RowProblem] | None = None) -> Iterator[tuple[RegistryRow, tuple | None, list[RowProblem]]]:
    """Rows with their stored values (or their problems), in file order.

    Measured: spreading this over forked worker processes made a 1,000,000-row import slower
    (92 s against 54 s on 2 cores), because shipping rows between processes costs more than
    computing their keys; so it stays in one process.
    """
    for row in reader.rows(quarantine.append if quarantine is not None else None):
        problems: list[RowProblem] = []
        yield row, _row_values(row.fields, file, row.line, problems, gaiji), problems


def _duplicate(file: str, line: int, rid: str, first: int) -> RowProblem:
    return RowProblem(file, line, "宛名番号", f"duplicate resident id {rid!r} (first on line {first})",
                      f"宛名番号 {rid} が重複しています ({first}行目と同じ)", rid)


def _load_sequential(cur: db_crypto.Cursor, reader: RegistryReader, file: str, gaiji: dict[str, str],
                     snapshot_id: int, progress: Progress | None, quarantine: list[RowProblem] | None = None) -> int:
    """Check and insert every row in file order; raise FileFormatError listing the problems, or
    with `quarantine` (a list) append them there and insert every other row (the first of two
    rows with one 宛名番号 is kept)."""
    problems: list[RowProblem] = []
    total_problems = 0
    seen: dict[str, int] = {}
    count = 0
    batch: list[tuple] = []
    for row, result, row_problems in _checked_rows(reader, file, gaiji, quarantine):
        rid = result[0] if result else ""
        if not row_problems and rid in seen:
            row_problems = [_duplicate(file, row.line, rid, seen[rid])]
        if row_problems and quarantine is not None:
            quarantine.extend(row_problems)
            continue
        if row_problems:
            total_problems += len(row_problems)
            problems.extend(row_problems[: max(0, MAX_PROBLEMS - len(problems))])
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        if problems:
            continue  # already refused: keep scanning only to report more problems
        seen[rid] = row.line
        batch.append((snapshot_id, row.line, *result, row.raw))
        count += 1
        if len(batch) >= BATCH:
            cur.executemany(_INSERT, batch)
            batch.clear()
            if progress:
                progress(count)
    if problems:
        raise FileFormatError(problems, total_problems)
    if count == 0:
        raise FileFormatError([RowProblem(file, 0, "", "no resident rows in the file", "住民の行がありません")])
    if batch:
        cur.executemany(_INSERT, batch)
    return count


# --- two processes for large files ----------------------------------------------------------------
# Checking a row and computing its matching keys costs about twice as much as inserting it, and it
# is pure Python, so one process cannot go faster. For a large file, two worker processes check
# its parts (worker 1 parts 1 and 3, worker 2 parts 2 and 4) and write the finished rows into
# private staging files (SQLite, no indexes, no journal). This process copies each finished part
# into the database with one SQL statement, in file order, while the workers go on with the
# next parts — all inside the import's one transaction. Any problem at all — a bad row, a
# duplicate 宛名番号 across parts, a worker that dies — makes the import start over in one process,
# which then reports every problem with its line exactly as before.
PARALLEL_MIN_BYTES = 16 << 20  # below this, starting two processes costs more than it saves
PARTS = 4
STAGED_COLUMNS = _RESIDENT_COLUMNS[1:]  # all but snapshot_id, which the copy supplies
QUARANTINE_COLUMNS = ("line", "field", "message", "message_ja", "value")


def _split_points(path: Path, reader: RegistryReader, parts: int = PARTS) -> list[tuple[int, int | None, int]] | None:
    """`parts` byte ranges (start, end or None for the end, first line) that begin at record
    boundaries, or None when the file is small, the machine has one core, or a boundary falls
    inside a quoted field.

    0x0A and 0x22 never occur inside a multi-byte character in UTF-8, CP932 or EUC-JP, so counting
    bytes is exact.
    """
    if Settings.from_env().import_workers == 1 or (os.cpu_count() or 1) < 2:
        return None
    data_start = reader.read_header()
    size = path.stat().st_size
    if size - data_start < PARALLEL_MIN_BYTES:
        return None
    cuts = [data_start]
    with path.open("rb") as f:
        for k in range(1, parts):
            f.seek(data_start + (size - data_start) * k // parts)
            f.readline()
            if f.tell() >= size or f.tell() <= cuts[-1]:
                return None
            cuts.append(f.tell())
        ranges: list[tuple[int, int | None, int]] = []
        line = 1
        f.seek(0)
        pos = 0
        for k, cut in enumerate(cuts):
            newlines = quotes = 0
            while pos < cut:
                chunk = f.read(min(cut - pos, 1 << 22))
                pos += len(chunk)
                newlines += chunk.count(b"\n")
                quotes += chunk.count(b'"')
            if quotes % 2:
                return None
            line += newlines
            ranges.append((cut, cuts[k + 1] if k + 1 < len(cuts) else None, line))
    return ranges


def _worker_command() -> list[str] | None:
    """How to start a worker: this interpreter running app.services.registry_worker. A frozen
    one-file binary has no `-m`, so it imports in one process."""
    if getattr(sys, "frozen", False):
        return None
    return [sys.executable, "-m", "app.services.registry_worker"]


@lru_cache(maxsize=1)
def staging_key() -> str:
    """The key of this process's staging files: registry rows never touch the disk in clear, and
    the key lives only in memory (the workers get it on stdin, never on their command line)."""
    return db_crypto.random_key()


def _plan_parallel(path: Path, reader: RegistryReader, folder: Path) -> list[tuple[int, int | None, int, Path]] | None:
    """The parts and their (empty, created here) staging files, or None for one process."""
    if _worker_command() is None:
        return None
    ranges = _split_points(path, reader)
    if ranges is None:
        return None
    plan = []
    for k, (start, end, line) in enumerate(ranges):
        out = folder / f"part{k}.db"
        db = db_crypto.connect(out, staging_key())
        try:
            db.execute(f"CREATE TABLE r ({', '.join(STAGED_COLUMNS)})")
            db.execute(f"CREATE TABLE q ({', '.join(QUARANTINE_COLUMNS)})")  # rows left out (--quarantine-bad-rows)
            db.commit()
        finally:
            db.close()
        plan.append((start, end, line, out))
    return plan


def _load_parallel(cur: db_crypto.Cursor, path: Path, reader: RegistryReader, gaiji: dict[str, str],
                   plan: list[tuple[int, int | None, int, Path]], snapshot_id: int,
                   progress: Progress | None, quarantine: list[RowProblem] | None = None) -> int | None:
    """Copy each part into `resident` as soon as it and every part before it are checked; None
    when anything went wrong. The staging files are ATTACHed as staged0… by the caller.

    Workers are plain subprocesses (multiprocessing's spawn would re-run the caller's main
    script); they report "n PART COUNT" lines and "ok PART COUNT" or "problem". When this process
    dies, their next report fails and they exit.
    """
    command = _worker_command()
    assert command is not None
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    procs = []
    for w in range(2):
        parts = [{"part": k, "start": st, "end": en, "first_line": ln, "out": str(out)}
                 for k, (st, en, ln, out) in enumerate(plan) if k % 2 == w]
        job = {"path": str(path), "profile": reader.profile.name if reader.profile else "auto",
               "encoding": reader.encoding, "gaiji": gaiji, "columns": STAGED_COLUMNS, "parts": parts,
               "quarantine": quarantine is not None}
        proc = subprocess.Popen([*command, json.dumps(job)], stdout=subprocess.PIPE, text=True,
                                stderr=subprocess.DEVNULL, stdin=subprocess.PIPE, env=env)
        procs.append(proc)
        assert proc.stdin is not None
        proc.stdin.write(staging_key() + "\n")
        proc.stdin.close()
    checked = [0] * len(plan)
    ready = [False] * len(plan)
    copied = 0  # parts copied so far
    count = 0  # rows copied so far
    try:
        with selectors.DefaultSelector() as sel:
            for proc in procs:
                sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
            open_streams = len(procs)
            while open_streams:
                for key, _ in sel.select():
                    line = key.fileobj.readline()  # type: ignore[union-attr]
                    if not line:
                        sel.unregister(key.fileobj)
                        open_streams -= 1
                        continue
                    kind, *values = line.split()
                    if kind not in ("n", "ok"):
                        return None  # a problem or a crash: start over in one process
                    part, rows = int(values[0]), int(values[1])
                    checked[part] = rows
                    ready[part] = ready[part] or kind == "ok"
                    while copied < len(plan) and ready[copied]:
                        try:
                            count += _copy_part(cur, copied, snapshot_id, path.name, quarantine)
                        except db_crypto.IntegrityError:
                            return None  # a 宛名番号 in two parts: the one-process pass names both lines
                        copied += 1
                    if progress:
                        progress(max(count, sum(checked)))
        return count if copied == len(plan) and count else None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()


def _copy_part(cur: db_crypto.Cursor, part: int, snapshot_id: int, file: str,
               quarantine: list[RowProblem] | None) -> int:
    """One checked part into `resident`. With `quarantine`, the rows its worker left out and the
    rows whose 宛名番号 an earlier part already had (the earlier row is kept) go to the list."""
    cols = ", ".join(STAGED_COLUMNS)
    keep = ""
    if quarantine is not None:
        quarantine.extend(RowProblem(file, *q) for q in cur.execute(
            f"SELECT {', '.join(QUARANTINE_COLUMNS)} FROM staged{part}.q"))
        quarantine.extend(_duplicate(file, line, rid, first) for line, rid, first in cur.execute(
            f"SELECT s.line_no, s.resident_id, r.line_no FROM staged{part}.r s JOIN resident r "
            f"ON r.snapshot_id = ? AND r.resident_id = s.resident_id", (snapshot_id,)).fetchall())
        keep = " WHERE resident_id NOT IN (SELECT resident_id FROM resident WHERE snapshot_id = ?)"
    cur.execute(f"INSERT INTO resident (snapshot_id, {cols}) SELECT ?, {cols} FROM staged{part}.r{keep} ORDER BY rowid",
                (snapshot_id, snapshot_id) if keep else (snapshot_id,))
    return cur.rowcount


def write_quarantine_report(problems: list[RowProblem], out: Path) -> None:
    """CSV in UTF-8 with BOM so Excel opens it: file, row, field, reason (Japanese and English), value."""
    from app.formats.tables import csv_writer

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv_writer(f)
        w.writerow(["ファイル", "行", "項目", "理由", "reason", "入力値"])
        for p in problems:
            w.writerow([p.file, p.line, p.field, p.message_ja, p.message, p.value])


def _store(engine: Engine, path: Path, reader: RegistryReader, gaiji: dict[str, str],
           plan: list[tuple[int, int | None, int, Path]] | None, progress: Progress | None, *, sha: str,
           profile: str, as_of: date | None, imported_by: str, started: datetime,
           quarantine_report: Path | None = None) -> tuple[int, int]:
    """One transaction: the snapshot row and its residents, checked by two workers when there is
    a plan, else (or after any problem) here row by row. Returns (snapshot id, processes used).
    With `quarantine_report`, bad rows are left out, listed in that file (written before the
    commit: no snapshot without its report) and counted on the snapshot."""
    quarantine: list[RowProblem] | None = [] if quarantine_report is not None else None
    raw_conn = engine.raw_connection()
    # The loop allocates millions of short-lived tuples and no reference cycles: the cyclic
    # collector would only rescan the growing `seen` dict again and again (measured: ~20 % of
    # the import's CPU time on 200,000 rows).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    cur = raw_conn.cursor()
    attached: list[str] = []
    try:
        # A large page cache for this one transaction: the resident indexes are updated in random
        # 宛名番号 order, and a small cache turns that into disk reads (measured: see bench/import_bench.py).
        cur.execute("PRAGMA cache_size = -262144")
        for n, part in enumerate(plan or []):
            cur.execute(f"ATTACH DATABASE ? AS staged{n} KEY ?", (str(part[3]), staging_key()))  # refused inside a transaction
            attached.append(f"staged{n}")
        # Deferred, not IMMEDIATE: the first INSERT takes the write lock on the database, and the
        # staging files stay unlocked for the workers still writing them.
        cur.execute("BEGIN")
        cur.execute(
            "INSERT INTO registrysnapshot (as_of, source_file, sha256, encoding, profile, row_count, imported_at, imported_by, gaiji_map, header) "
            "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, '[]')",
            ((as_of or date.today()).isoformat(), path.name, sha, reader.encoding, profile, started.isoformat(sep=" "),
             imported_by, json.dumps(gaiji, ensure_ascii=False)),
        )
        snapshot_id = cur.lastrowid
        assert snapshot_id is not None
        count = None
        if plan:
            cur.execute("SAVEPOINT parallel_rows")
            count = _load_parallel(cur, path, reader, gaiji, plan, snapshot_id, progress, quarantine)
            if count is None:
                cur.execute("ROLLBACK TO SAVEPOINT parallel_rows")
                if quarantine:
                    quarantine.clear()
            cur.execute("RELEASE SAVEPOINT parallel_rows")
        workers = 2 if count is not None else 1
        if count is None:  # one process, or a problem somewhere: in order, for exact messages
            count = _load_sequential(cur, reader, path.name, gaiji, snapshot_id, progress, quarantine)
        if progress:
            progress(count)
        report = ""
        if quarantine:
            assert quarantine_report is not None
            quarantine.sort(key=lambda p: p.line)
            write_quarantine_report(quarantine, quarantine_report)
            report = str(quarantine_report)
        cur.execute("UPDATE registrysnapshot SET row_count = ?, profile = ?, header = ?, quarantined = ?, "
                    "quarantine_report = ? WHERE id = ?",
                    (count, reader.profile.name if reader.profile else profile,
                     json.dumps(reader.header, ensure_ascii=False), len(quarantine or ()), report, snapshot_id))
        raw_conn.commit()
    except BaseException:
        raw_conn.rollback()
        raise
    finally:
        if gc_was_enabled:
            gc.enable()
        for name in attached:
            cur.execute(f"DETACH DATABASE {name}")
        cur.execute("PRAGMA cache_size = -2000")  # back to SQLite's default for the service
        raw_conn.close()
    return snapshot_id, workers


def import_registry(
    engine: Engine,
    path: Path,
    *,
    profile: str = "auto",
    encoding: str = "auto",
    gaiji_map: Path | None = None,
    as_of: date | None = None,
    imported_by: str = "",
    progress: Progress | None = None,
    parallel: bool = True,
    quarantine_bad_rows: bool = False,
    quarantine_report: Path | None = None,
) -> ImportResult:
    """Load `path` as a new snapshot. Raises FileFormatError (nothing stored) or AlreadyDone.

    `parallel`: large files are checked by two worker processes (see `_load_parallel`).
    `quarantine_bad_rows`: in a disaster a backup with a few bad rows is better than none: the
    good rows are loaded, the bad ones listed in `quarantine_report` (default FILE.quarantine.csv
    beside the file) and the snapshot is marked incomplete with their count. Off by default.
    """
    started = utcnow()
    path = Path(path)
    if not path.is_file():
        raise FileFormatError([RowProblem(path.name, 0, "", "file not found", "ファイルが見つかりません")])
    sha = file_sha256(path)
    with Session(engine) as s:
        existing = s.exec(select(RegistrySnapshot).where(RegistrySnapshot.sha256 == sha)).first()
        if existing:
            raise AlreadyDone(
                f"{path.name} was already imported as snapshot {existing.id} (as of {existing.as_of}) "
                f"on {existing.imported_at:%Y-%m-%d %H:%M}; nothing changed",
                f"このファイルは取込済みです (スナップショット {existing.id}, 基準日 {existing.as_of})",
            )
    gaiji = read_gaiji_map(gaiji_map) if gaiji_map else {}
    reader = RegistryReader(path, profile=profile, encoding=encoding)

    with tempfile.TemporaryDirectory(prefix="anpi-import-") as tmp:
        plan = _plan_parallel(path, reader, Path(tmp)) if parallel else None
        report = (quarantine_report or path.with_name(path.stem + ".quarantine.csv")) if quarantine_bad_rows else None
        snapshot_id, workers = _store(engine, path, reader, gaiji, plan, progress, sha=sha, profile=profile,
                                      as_of=as_of, imported_by=imported_by, started=started, quarantine_report=report)
    with Session(engine, expire_on_commit=False) as s:
        snap = s.get(RegistrySnapshot, snapshot_id)
        assert snap is not None
    return ImportResult(snap, (utcnow() - started).total_seconds(), workers)


def list_snapshots(session: Session) -> list[RegistrySnapshot]:
    return list(session.exec(select(RegistrySnapshot).order_by(RegistrySnapshot.id)))


def newest_snapshot(session: Session) -> RegistrySnapshot | None:
    return session.exec(select(RegistrySnapshot).order_by(RegistrySnapshot.as_of.desc(), RegistrySnapshot.id.desc())).first()


def resident_count(session: Session, snapshot_id: int) -> int:
    return session.exec(select(func.count()).select_from(Resident).where(Resident.snapshot_id == snapshot_id)).one()


def parse_as_of(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--as-of {text!r} is not a date (YYYY-MM-DD)", "基準日は YYYY-MM-DD で入力してください", "as_of") from None
