"""Large registry files are checked by two worker processes: same result, same refusals.

The size threshold is lowered so that a few thousand rows take the two-process path; the
workers are real subprocesses reading the real file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.db import open_shelter_db
from app.formats.errors import FileFormatError
from app.services import registry
from fixtures.generate import make_dataset
from app.db_crypto import connect as db_connect

COLUMNS = ("resident_id, line_no, household_id, family_name, given_name, family_name_kana, given_name_kana, alpha_name, "
           "birth_date, sex, address, restricted, k_family_variant, k_given_variant, k_family_kana, k_given_kana, "
           "k_alpha, k_town, k_house, raw_line")


def residents(db: Path) -> list[tuple]:
    con = db_connect(db)
    try:
        return con.execute(f"SELECT {COLUMNS} FROM resident ORDER BY line_no").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_dataset(tmp_path_factory.mktemp("par"), residents=3000, evacuees=0, seed=7, encoding="cp932")


@pytest.fixture
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "PARALLEL_MIN_BYTES", 1000)
    monkeypatch.delenv("ANPI_IMPORT_WORKERS", raising=False)


def test_split_points_are_record_boundaries(dataset, low_threshold) -> None:  # type: ignore[no-untyped-def]
    reader = registry.RegistryReader(dataset.registry_path, encoding="cp932")
    ranges = registry._split_points(dataset.registry_path, reader)
    assert ranges is not None and len(ranges) == registry.PARTS
    data = dataset.registry_path.read_bytes()
    assert ranges[0][2] == 2 and ranges[-1][1] is None
    for (start, end, line), nxt in zip(ranges, ranges[1:] + [None]):
        assert data[start - 1:start] == b"\n"
        assert data[:start].count(b"\n") + 1 == line
        assert nxt is None or end == nxt[0]


def test_two_processes_store_exactly_what_one_process_stores(tmp_path: Path, dataset, low_threshold) -> None:  # type: ignore[no-untyped-def]
    one, two = tmp_path / "one.db", tmp_path / "two.db"
    registry.import_registry(open_shelter_db(one), dataset.registry_path, gaiji_map=dataset.gaiji_map_path,
                             parallel=False)
    seen: list[int] = []
    res = registry.import_registry(open_shelter_db(two), dataset.registry_path, gaiji_map=dataset.gaiji_map_path,
                                   progress=seen.append)
    assert res.snapshot.row_count == 3000 and res.workers == 2
    assert residents(one) == residents(two)
    assert len(seen) > 1 and seen[-1] == 3000  # progress came in batches from the workers


def _append_rows(src: Path, dst: Path, extra: list[str]) -> Path:
    data = src.read_bytes()
    if not data.endswith(b"\n"):
        data += b"\r\n"
    dst.write_bytes(data + "".join(line + "\r\n" for line in extra).encode("cp932"))
    return dst


def test_problem_in_the_second_half_is_reported_with_its_line(tmp_path: Path, dataset, low_threshold) -> None:  # type: ignore[no-untyped-def]
    lines = dataset.registry_path.read_bytes().decode("cp932").splitlines()
    cells = lines[-1].split(",")
    cells[0] = "X-NEW-1"
    header = lines[0].split(",")
    cells[header.index("生年月日")] = "2001-02-30"
    bad = _append_rows(dataset.registry_path, tmp_path / "bad.csv", [",".join(cells)])
    db = tmp_path / "bad.db"
    engine = open_shelter_db(db)
    with pytest.raises(FileFormatError) as err:
        registry.import_registry(engine, bad)
    problem = err.value.problems[0]
    assert problem.line == len(lines) + 1 and problem.field == "生年月日"
    assert residents(db) == []  # nothing half-written


def test_duplicate_across_the_halves_names_both_lines(tmp_path: Path, dataset, low_threshold) -> None:  # type: ignore[no-untyped-def]
    lines = dataset.registry_path.read_bytes().decode("cp932").splitlines()
    first_id = lines[1].split(",")[0]
    dup = _append_rows(dataset.registry_path, tmp_path / "dup.csv", [lines[1]])
    db = tmp_path / "dup.db"
    with pytest.raises(FileFormatError) as err:
        registry.import_registry(open_shelter_db(db), dup)
    problem = err.value.problems[0]
    assert problem.line == len(lines) + 1
    assert first_id in problem.message and "line 2" in problem.message
    assert residents(db) == []


def test_quarantine_in_two_processes_matches_one_process(tmp_path: Path, dataset, low_threshold) -> None:  # type: ignore[no-untyped-def]
    """A large backup with 4 duplicate 宛名番号 (across parts and within one), an impossible date
    and a short row: both paths keep the same good rows and quarantine the same bad ones."""
    lines = dataset.registry_path.read_bytes().decode("cp932").splitlines()
    header = lines[0].split(",")
    bad_date = lines[-1].split(",")
    bad_date[0] = "X-NEW-1"
    bad_date[header.index("生年月日")] = "2001-02-30"
    extra = [lines[1], lines[2], lines[len(lines) // 2], lines[-1], ",".join(bad_date), "X-SHORT,1"]
    f = _append_rows(dataset.registry_path, tmp_path / "disaster.csv", extra)
    results = {}
    for name, parallel in (("one", False), ("two", True)):
        db = tmp_path / f"{name}.db"
        res = registry.import_registry(open_shelter_db(db), f, parallel=parallel, quarantine_bad_rows=True,
                                       quarantine_report=tmp_path / f"{name}.csv")
        assert res.workers == (2 if parallel else 1)
        assert res.snapshot.row_count == 3000 and res.snapshot.quarantined == 6
        results[name] = (residents(db), (tmp_path / f"{name}.csv").read_text(encoding="utf-8-sig"))
    assert results["one"] == results["two"]
    report = results["two"][1].splitlines()
    first = len(lines) + 1
    assert [int(r.split(",")[1]) for r in report[1:]] == list(range(first, first + 6))
    with pytest.raises(FileFormatError):  # and without the option the file is refused whole
        registry.import_registry(open_shelter_db(tmp_path / "refused.db"), f)
