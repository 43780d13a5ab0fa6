"""Fuzzing registry profiles (app/formats/profile.py): the TOML files municipal IT writes by hand.

Random TOML documents (valid syntax, any shape), random bytes and damaged copies of the built-in
profiles either load as a Profile or fail with our FileFormatError; a profile that loads then
drives a real registry import, which again may only refuse with FileFormatError.
"""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from app.db import open_shelter_db
from app.formats.errors import FileFormatError
from app.formats.profile import KNOWN_FIELDS, PROFILE_DIR, Profile, load_profile
from app.services.registry import import_registry
from tests.fuzz.strategies import TEXT, db_fingerprint, fuzz_settings, mutated
from tests.web.helpers import HEADER, REGISTRY

_names = itertools.count()
BUILT_IN = [(PROFILE_DIR / f"{n}.toml").read_bytes() for n in ("anpi", "kihon")]


def toml_key(k: str) -> str:
    return json.dumps(k, ensure_ascii=False)  # a quoted key accepts any text


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


SCALAR = st.one_of(st.sampled_from(HEADER), TEXT, st.integers(-5, 5),
                   st.booleans(), st.floats(allow_nan=False, allow_infinity=False))
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.sampled_from(sorted(KNOWN_FIELDS)), inner, max_size=3)),
                     max_leaves=8)
KEY = st.one_of(st.sampled_from(sorted(KNOWN_FIELDS)), TEXT)


COLUMN = st.one_of(st.sampled_from(HEADER), TEXT)
COLUMNS = st.one_of(COLUMN, st.lists(COLUMN, min_size=1, max_size=3))


@st.composite
def plausible_profiles(draw: st.DrawFn) -> str:
    """Known fields mapped to real or random column names: loads, then meets the registry file."""
    fields = {"resident_id": draw(COLUMNS), **draw(st.dictionaries(st.sampled_from(sorted(KNOWN_FIELDS)), COLUMNS, max_size=8))}
    join = draw(st.dictionaries(st.sampled_from(sorted(KNOWN_FIELDS)), st.lists(COLUMN, min_size=1, max_size=3), max_size=3))
    lines = [f"[profile]\nname = {toml_value(draw(TEXT))}", "[fields]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in fields.items()]
    lines += ["[join]"] + [f"{k} = {toml_value(v)}" for k, v in join.items()]
    return "\n".join(lines) + "\n"


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(plausible_profiles())
    lines = []
    for table in draw(st.lists(st.sampled_from(["profile", "fields", "join", "other"]), unique=True, max_size=4)):
        lines.append(f"[{table}]")
        entries = draw(st.dictionaries(KEY, VALUE, max_size=6))
        if table == "fields" and draw(st.booleans()):  # often a loadable profile, so the import runs too
            entries["resident_id"] = draw(st.one_of(st.sampled_from(["宛名番号", ["resident_id", "宛名番号"]]), VALUE))
        for k, v in entries.items():
            lines.append(f"{toml_key(k)} = {toml_value(v)}")
    if draw(st.booleans()):  # a top-level key that should have been a table
        lines.insert(0, f"fields = {toml_value(draw(VALUE))}")
    return "\n".join(lines) + "\n"


def check_load(path: Path) -> Profile | None:
    try:
        prof = load_profile(str(path))
    except FileFormatError as exc:
        assert exc.problems and str(exc)
        return None
    assert "resident_id" in prof.fields and set(prof.fields) | set(prof.join) <= KNOWN_FIELDS
    return prof


@pytest.fixture(scope="module")
def registry_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    d = tmp_path_factory.mktemp("profile-fuzz")
    engine = open_shelter_db(d / "shelter.db")
    yield d, engine
    engine.dispose()


@fuzz_settings(150)
@given(doc=toml_documents())
def test_random_toml_profiles(registry_csv: tuple[Path, object], doc: str) -> None:
    d, engine = registry_csv
    n = next(_names)
    p = d / f"vendor-{n}.toml"
    p.write_text(doc, encoding="utf-8")
    if check_load(p) is None:
        event("profile refused")
        return
    # a profile that loads must drive an import that either works or names the problem
    csv_path = d / f"juki-{n}.csv"
    csv_path.write_bytes(("\r\n".join(",".join(r) for r in [HEADER, *REGISTRY]) + f"\r\n9{n},,,,,,,,,,,,\r\n").encode())
    before = db_fingerprint(d / "shelter.db", ("registrysnapshot", "resident"))
    try:
        import_registry(engine, csv_path, profile=str(p), as_of=date(2026, 10, 31))
        event("imported with the random profile")
    except FileFormatError as exc:
        event("import refused")
        assert exc.problems
        assert db_fingerprint(d / "shelter.db", ("registrysnapshot", "resident")) == before


@fuzz_settings(150)
@given(data=st.one_of(st.binary(max_size=600), st.sampled_from(BUILT_IN).flatmap(mutated),
                      TEXT.map(lambda t: t.encode("utf-8", "replace"))))
def test_damaged_profile_files(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("p") / "vendor.toml"
    p.write_bytes(data)
    check_load(p)


def test_a_folder_or_unreadable_path_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="profile"):
        load_profile(str(tmp_path))  # `--profile` pointed at a folder
    with pytest.raises(FileFormatError, match="not found"):
        load_profile(str(tmp_path / "missing.toml"))
