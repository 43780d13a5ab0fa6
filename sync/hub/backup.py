"""``anpi hub backup`` and the point-in-time restore drill, over PostgreSQL's own tools.

A backup is ``pg_basebackup`` (a plain copy of the data directory, WAL to its end streamed in)
plus the WAL archive that the primary's ``archive_command`` keeps filling; a restore copies the
base into a fresh, empty data directory and lets PostgreSQL replay archived WAL up to a target
time (``recovery_target_time``) or a named restore point, then promote.  Nothing here copies
rows: the server does (README "Hub high availability", restore drill).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from sync.errors import SyncError
from sync.settings import SyncSettings

#: the directory of the PostgreSQL server tools (default: the newest /usr/lib/postgresql/*/bin, else $PATH)
PG_BIN_ENV = "ANPI_PG_BIN"




class BackupError(SyncError):
    """A backup or restore step failed; the message is one line for the operator."""


def pg_bin(tool: str) -> str:
    """Path of a PostgreSQL tool (``pg_basebackup``, ``pg_ctl`` …)."""
    configured = SyncSettings.from_env().pg_bin
    base = str(configured) if configured else ""
    if not base:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                       if Path(p).parent.name.isdigit() else 0)
        base = found[-1] if found else ""
    path = Path(base) / tool if base else None
    if path is not None and path.exists():
        return str(path)
    which = shutil.which(tool)
    if which is None:
        raise BackupError(f"{tool} not found: install the PostgreSQL server tools or set {PG_BIN_ENV}")
    return which


def libpq_args(database_url: str) -> tuple[list[str], dict[str, str]]:
    """``-h -p -U`` arguments and the password (as ``PGPASSWORD``) of a hub database URL."""
    url = make_url(database_url)
    args = []
    if url.host:
        args += ["-h", url.host]
    if url.port:
        args += ["-p", str(url.port)]
    if url.username:
        args += ["-U", url.username]
    env = {"PGPASSWORD": url.password} if url.password else {}
    return args, env


def run_backup(database_url: str, dest: Path, *, label: str = "anpi hub backup") -> dict[str, Any]:
    """Take a base backup of the hub's cluster into ``dest`` (must not exist or be empty).

    Streams the WAL needed to make the copy consistent (``-X stream``) and checkpoints at once
    (``--checkpoint=fast``); later changes come from the WAL archive at restore time.  Writes
    ``anpi-backup.json`` (when, from where) beside the data.  The connecting role needs the
    REPLICATION attribute.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty; give a new directory for the backup")
    dest.mkdir(parents=True, exist_ok=True)
    args, env = libpq_args(database_url)
    started = datetime.now(timezone.utc)
    proc = subprocess.run([pg_bin("pg_basebackup"), *args, "-D", str(dest / "base"), "-Fp", "-X", "stream",
                           "--checkpoint=fast", "-l", label, "--no-password"],
                          env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError(f"pg_basebackup failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    info = {"label": label, "started_at": started.isoformat(),
            "finished_at": datetime.now(timezone.utc).isoformat(),
            "source": make_url(database_url).render_as_string(hide_password=True), "format": "plain"}
    (dest / "anpi-backup.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def prepare_restore(backup: Path, wal_archive: Path, data_dir: Path, *, target_time: str | None = None,
                    target_name: str | None = None, port: int | None = None) -> Path:
    """Lay out a fresh data directory that, when started, replays the archive to the target and promotes.

    ``target_time``: an ISO timestamp with zone (restore to just before a mistake); ``target_name``: a
    restore point made with ``pg_create_restore_point``; neither: replay all archived WAL.  The
    restored server keeps no standby settings (it must not wait for a standby that is not there).
    """
    base = Path(backup) / "base"
    if not (base / "PG_VERSION").exists():
        raise BackupError(f"{backup} holds no base backup (no base/PG_VERSION)")
    data_dir = Path(data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty; restore into a fresh directory")
    shutil.copytree(base, data_dir, dirs_exist_ok=True)
    for stale in ("standby.signal", "postmaster.pid", "postmaster.opts"):
        (data_dir / stale).unlink(missing_ok=True)
    lines = [f"restore_command = 'cp \"{Path(wal_archive).resolve()}/%f\" \"%p\"'",
             "recovery_target_action = 'promote'", "synchronous_standby_names = ''", "primary_conninfo = ''",
             "primary_slot_name = ''"]
    if target_time:
        lines += [f"recovery_target_time = '{target_time}'", "recovery_target_inclusive = off"]
    elif target_name:
        lines.append(f"recovery_target_name = '{target_name}'")
    if port:
        lines.append(f"port = {int(port)}")
    with open(data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
        fh.write("\n# anpi hub restore\n" + "\n".join(lines) + "\n")
    (data_dir / "recovery.signal").write_text("", encoding="utf-8")
    os.chmod(data_dir, 0o700)
    return data_dir
