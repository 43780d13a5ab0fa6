"""Worker process of a large registry import: checks one byte range and sends insert-ready rows.

Started by `app.services.registry._load_parallel` as `python -m app.services.registry_worker JOB`
(JOB is JSON). Writes frames to stdout; any problem is reported as one "problem" frame, and the
importer then starts over in one process so that every problem is reported with its line.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

from app.formats.errors import FileFormatError, RowProblem
from app.formats.registry_file import RegistryReader
from app.services.registry import BATCH, _row_values, write_frame


def run(job: dict, out) -> None:  # type: ignore[no-untyped-def]
    gc.disable()  # millions of short-lived tuples, no cycles (see import_registry)
    path = Path(job["path"])
    gaiji: dict[str, str] = job["gaiji"]
    snapshot_id: int = job["snapshot_id"]
    try:
        reader = RegistryReader(path, profile=job["profile"], encoding=job["encoding"])
        reader.read_header()
        batch: list[tuple] = []
        for row in reader.rows_between(job["start"], job["end"], job["first_line"]):
            problems: list[RowProblem] = []
            values = _row_values(row.fields, path.name, row.line, problems, gaiji)
            if values is None:
                write_frame(out, "problem", None)
                return
            batch.append((snapshot_id, row.line, *values, row.raw))
            if len(batch) >= BATCH:
                write_frame(out, "rows", batch)
                batch = []
        write_frame(out, "rows", batch)
        write_frame(out, "done", None)
    except FileFormatError:
        write_frame(out, "problem", None)


def main() -> None:
    out = sys.stdout.buffer
    try:
        run(json.loads(sys.argv[1]), out)
    except BrokenPipeError:  # the importer stopped reading (it was killed or gave up)
        pass
    except Exception as exc:  # noqa: BLE001 - the importer starts over in one process
        try:
            write_frame(out, "error", repr(exc))
        except BrokenPipeError:
            pass


if __name__ == "__main__":
    main()
