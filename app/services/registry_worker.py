"""Worker process of a large registry import: checks one byte range into a staging file.

Started by `app.services.registry._stage_in_parallel` as
`python -m app.services.registry_worker JOB` (JOB is JSON). Writes the finished rows into a
private SQLite file (encrypted with the importer's throw-away key, given on stdin; table `r`, no indexes, no journal: it is thrown away if anything fails) and
reports on stdout: "n PART COUNT" now and then, "ok PART COUNT" per part, or "problem". On any problem the
importer starts over in one process, so that every problem is reported with its line. With
`--quarantine-bad-rows` a bad row is no problem: it goes to the staging file's table `q` (line,
field, reasons, value) and the worker goes on; the importer puts it in the report.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import TextIO

from app import db_crypto
from app.formats.errors import FileFormatError, RowProblem
from app.formats.registry_file import RegistryReader
from app.services.registry import BATCH, _duplicate, _row_values


def run(job: dict, out: TextIO, key: str) -> None:
    """`key`: the staging files' key, read from stdin (a command line is visible to every user)."""
    gc.disable()  # millions of short-lived tuples, no cycles (see import_registry)
    path = Path(job["path"])
    gaiji: dict[str, str] = job["gaiji"]
    insert = f"INSERT INTO r VALUES ({', '.join('?' for _ in job['columns'])})"
    reader = RegistryReader(path, profile=job["profile"], encoding=job["encoding"])
    reader.read_header()
    quarantine = bool(job.get("quarantine"))
    seen: dict[str, int] = {}
    for part in job["parts"]:
        k = part["part"]
        db = db_crypto.connect(part["out"], key, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("BEGIN")
            batch: list[tuple] = []
            count = 0

            def left_out(p: RowProblem) -> None:  # --quarantine-bad-rows: the report lists it
                db.execute("INSERT INTO q VALUES (?, ?, ?, ?, ?)", (p.line, p.field, p.message, p.message_ja, p.value))

            for row in reader.rows_between(part["start"], part["end"], part["first_line"],
                                           left_out if quarantine else None):
                problems: list[RowProblem] = []
                values = _row_values(row.fields, path.name, row.line, problems, gaiji)
                if values is not None and values[0] in seen:
                    problems.append(_duplicate(path.name, row.line, values[0], seen[values[0]]))
                if problems and quarantine:
                    for p in problems:
                        left_out(p)
                    continue
                if problems:
                    print("problem", k, file=out, flush=True)
                    return
                assert values is not None
                seen[values[0]] = row.line
                batch.append((row.line, *values, row.raw))
                if len(batch) >= BATCH:
                    db.executemany(insert, batch)
                    count += len(batch)
                    batch = []
                    print("n", k, count, file=out, flush=True)
            db.executemany(insert, batch)
            count += len(batch)
            db.execute("COMMIT")
        except FileFormatError:
            print("problem", k, file=out, flush=True)
            return
        finally:
            db.close()
        print("ok", k, count, file=out, flush=True)


def main() -> None:
    try:
        run(json.loads(sys.argv[1]), sys.stdout, sys.stdin.readline().strip())
    except BrokenPipeError:  # the importer stopped listening (it was killed or gave up)
        pass
    except Exception as exc:  # noqa: BLE001 - the importer starts over in one process
        try:
            print("error", repr(exc).replace("\n", " "), file=sys.stdout, flush=True)
        except BrokenPipeError:
            pass


if __name__ == "__main__":
    main()
