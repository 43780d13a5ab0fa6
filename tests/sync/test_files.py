"""sync.files: the one atomic write of both layers — the target holds the old file or the whole new one."""
from __future__ import annotations

from pathlib import Path

import pytest

from sync.files import atomic_path, atomic_write_bytes, atomic_write_text


def test_whole_file_replaces_the_old_one_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "list.csv"
    atomic_write_text(out, "old\n", encoding="utf-8-sig")
    atomic_write_bytes(out, b"new\n")
    assert out.read_bytes() == b"new\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["list.csv"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    out = tmp_path / "list.csv"
    out.write_text("old", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        with atomic_path(out) as tmp, tmp.open("w", encoding="cp932", errors="strict") as fh:
            fh.write("half written 𠮷")  # not in CP932
    assert out.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.csv"]
