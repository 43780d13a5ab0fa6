"""Free space on the disk that holds the shelter database, for the dashboard's early warning.

Why: when the disk fills, SQLite can no longer append a registration or an audit entry, and
every write (and every look at personal data, which must be audited) is refused with 507 until
space comes back. A warning while there is still room gives staff time to delete old exports
or move backups before intake stops.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True)
class DiskSpace:
    free_bytes: int
    total_bytes: int
    warn_below_mb: int

    @property
    def low(self) -> bool:
        return self.free_bytes < self.warn_below_mb * MB

    @property
    def free_text(self) -> str:
        """"12.3 GB" / "420 MB": what staff read on the dashboard."""
        if self.free_bytes >= 1024 * MB:
            return f"{self.free_bytes / (1024 * MB):.1f} GB"
        return f"{self.free_bytes // MB} MB"

    def as_dict(self) -> dict[str, object]:
        return {"free_bytes": self.free_bytes, "total_bytes": self.total_bytes,
                "warn_below_mb": self.warn_below_mb, "low": self.low}


def disk_space(db_path: str | Path, warn_below_mb: int) -> DiskSpace | None:
    """The free space of the folder holding `db_path` (None when it cannot be measured, e.g. the
    folder was removed: the dashboard then shows nothing rather than failing)."""
    folder = Path(db_path).resolve().parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return None
    return DiskSpace(usage.free, usage.total, warn_below_mb)
