"""Registry profiles: which vendor column feeds which registry field.

A profile is a small TOML file (see profiles/anpi.toml): `[fields]` maps a field to the header
names accepted for it, `[join]` builds one field from several columns. Municipal IT writes one
for any vendor's export without touching code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from app.formats.errors import FileFormatError, RowProblem

PROFILE_DIR = Path(__file__).parent / "profiles"

# Fields a profile may fill. full_name / full_name_kana are split at the first space.
KNOWN_FIELDS = frozenset({
    "resident_id", "household_id", "family_name", "given_name", "family_name_kana", "given_name_kana",
    "full_name", "full_name_kana", "alpha_name", "common_name", "former_family_name", "birth_date",
    "birth_date_unknown", "sex", "relationship", "resident_status", "postal_code", "address", "restricted",
})


@dataclass(frozen=True)
class Profile:
    name: str
    fields: dict[str, list[str]]
    join: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""


def load_profile(name_or_path: str) -> Profile:
    """`anpi`, `kihon`, or the path of a user TOML profile."""
    path = PROFILE_DIR / f"{name_or_path}.toml" if name_or_path in ("anpi", "kihon") else Path(name_or_path)
    label = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileFormatError([RowProblem(label, 0, "", f"profile {name_or_path!r} not found (use anpi, kihon or a TOML file)",
                                          "プロファイルが見つかりません")]) from None
    except OSError as exc:  # a folder, no permission, a device: still one clean line
        raise FileFormatError([RowProblem(label, 0, "", f"profile {name_or_path!r} cannot be read: {exc.strerror or exc}",
                                          "プロファイルを読めません")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError([RowProblem(label, 0, "", f"profile is not valid TOML: {exc}",
                                          "プロファイルのTOMLが読めません")]) from None
    fields_raw = data.get("fields", {})
    join_raw = data.get("join", {})
    problems: list[RowProblem] = []
    if not isinstance(fields_raw, dict) or not isinstance(join_raw, dict):
        raise FileFormatError([RowProblem(label, 0, "fields", "[fields] and [join] must be tables",
                                          "[fields] と [join] は表で書いてください")])
    fields: dict[str, list[str]] = {}
    join: dict[str, list[str]] = {}
    for target, source in ((fields, fields_raw), (join, join_raw)):
        for key, value in source.items():
            if key not in KNOWN_FIELDS:
                problems.append(RowProblem(label, 0, key, f"unknown field {key!r}; known: {', '.join(sorted(KNOWN_FIELDS))}",
                                           f"不明な項目 {key}"))
                continue
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                problems.append(RowProblem(label, 0, key, "must be a column name or a list of column names",
                                           "列名または列名のリストを書いてください"))
                continue
            target[key] = names
    if "resident_id" not in fields:
        problems.append(RowProblem(label, 0, "resident_id", "profile must map resident_id (宛名番号)",
                                   "宛名番号の列を指定してください"))
    if problems:
        raise FileFormatError(problems)
    profile_info = data.get("profile", {})
    name = profile_info.get("name", path.stem) if isinstance(profile_info, dict) else path.stem
    return Profile(name=str(name), fields=fields, join=join, source=str(path))
