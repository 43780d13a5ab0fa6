"""Files written whole or not at all: a temporary name beside the target, fsync, rename, fsync
the folder.  A power cut or a pulled USB stick leaves the old file or the new one, never half of
one.

One home for both layers: ``sync/`` writes bundles and receipts, ``app/`` exports and backups, and
``sync/`` may not import ``app/`` (ARCHITECTURE.md §8); ``matching/`` does no I/O — so it lives here.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ulid import ULID


def fsync_file(path: str | Path) -> None:
    with open(path, "rb+") as f:  # Windows fsyncs only a handle open for writing
        os.fsync(f.fileno())


def fsync_dir(folder: str | Path) -> None:
    """Make a rename durable; Windows cannot open a folder for fsync (NTFS journals renames)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (FAT on USB sticks) refuse fsync on a folder
    finally:
        os.close(fd)


def temp_beside(out: Path, suffix: str = ".tmp") -> Path:
    """A hidden, unique temporary name in the target's folder (a rename never crosses disks)."""
    return out.with_name(f".{out.name}.{ULID()}{suffix}")


@contextmanager
def atomic_path(out: str | Path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write (by hand or by a library: openpyxl, reportlab); when the
    block ends without an exception it becomes ``out`` durably, otherwise it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(out, suffix)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out.parent)


def atomic_write_bytes(out: str | Path, data: bytes) -> None:
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(out: str | Path, text: str, *, encoding: str = "utf-8") -> None:
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding=encoding, newline="")
