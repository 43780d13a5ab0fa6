"""Throw-away PostgreSQL clusters for the failover bench and slow tests: plain functions.

A primary with WAL archiving and replication slots, a standby made by ``pg_basebackup -R`` (it
streams from a slot, and the primary waits for it when ``synchronous_standby_names`` names it),
``kill -9`` of a postmaster, ``pg_ctl promote``, and a point-in-time restore through
:mod:`sync.hub.backup` (the code path of ``anpi hub backup``).  Clusters live in temp
directories owned by the ``postgres`` OS user when run as root (``initdb`` refuses root), listen
on 127.0.0.1 and a unix socket in their own directory, with trust authentication.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from sync.hub.backup import pg_bin, prepare_restore

RUN_AS = "postgres"


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *args] if os.geteuid() == 0 else args


def run(args: list[str], timeout: float = 120) -> str:
    """Run a server tool as the cluster owner; raise with its stderr on failure."""
    p = subprocess.run(_as_owner(args), capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workdir(prefix: str = "anpi-pg-") -> Path:
    """A temp directory the cluster owner can write (removed by :func:`destroy`)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(d, RUN_AS, RUN_AS)
    d.chmod(0o755)
    return d


def _owned_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, RUN_AS, RUN_AS)
    return path


@dataclass
class Cluster:
    data: Path
    port: int

    @property
    def socket_dir(self) -> Path:
        return self.data.parent

    def url(self, db: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{db}"

    def sql(self, statement: str, db: str = "postgres") -> list[tuple]:
        eng = create_engine(self.url(db), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        try:
            with eng.connect() as c:
                res = c.execute(text(statement))
                return [tuple(r) for r in res.all()] if res.returns_rows else []
        finally:
            eng.dispose()


def _conf(cluster: Cluster, lines: list[str]) -> None:
    with open(cluster.data / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def init_primary(root: Path, *, archive: Path, port: int | None = None, name: str = "primary") -> Cluster:
    """initdb + the settings of README "Hub high availability" (WAL archive, replication)."""
    c = Cluster(root / name, port or free_port())
    run([pg_bin("initdb"), "-D", str(c.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
         "--no-instructions"])
    _owned_dir(archive)
    _conf(c, [f"port = {c.port}", "listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{c.socket_dir}'",
              "wal_level = replica", "max_wal_senders = 5", "max_replication_slots = 5", "hot_standby = on",
              "synchronous_commit = on", "archive_mode = on",
              f"archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'",
              "max_connections = 200", "shared_buffers = 64MB", "wal_keep_size = 256MB"])
    start(c)
    return c


def start(c: Cluster, timeout: int = 60) -> None:
    run([pg_bin("pg_ctl"), "-D", str(c.data), "-l", str(c.data.parent / f"{c.data.name}.log"), "-w",
         "-t", str(timeout), "start"], timeout=timeout + 10)


def stop(c: Cluster, mode: str = "fast") -> None:
    """Stop if running (never raises: used in clean-up)."""
    if (c.data / "postmaster.pid").exists():
        subprocess.run(_as_owner([pg_bin("pg_ctl"), "-D", str(c.data), "-m", mode, "-w", "stop"]),
                       capture_output=True, timeout=60)


def postmaster_pid(c: Cluster) -> int:
    return int((c.data / "postmaster.pid").read_text().split()[0])


def kill9(c: Cluster) -> int:
    """``kill -9`` the postmaster (its backends notice and exit); returns the pid killed."""
    pid = postmaster_pid(c)
    os.kill(pid, signal.SIGKILL)
    return pid


def make_standby(primary: Cluster, root: Path, *, name: str = "standby1", port: int | None = None) -> Cluster:
    """``pg_basebackup -R`` from a replication slot, started as a hot standby named ``name``."""
    primary.sql(f"SELECT pg_create_physical_replication_slot('{name}')")
    c = Cluster(root / name, port or free_port())
    run([pg_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D", str(c.data),
         "-R", "-X", "stream", "-S", name, "--checkpoint=fast", "--no-sync"], timeout=300)
    # cluster_name is the application_name the standby's WAL receiver shows the primary; the standby
    # itself names no synchronous standby (once promoted it must not wait for one that is not there)
    _conf(c, [f"port = {c.port}", f"unix_socket_directories = '{c.socket_dir}'", f"cluster_name = '{name}'",
              "synchronous_standby_names = ''"])
    start(c)
    return c


def set_synchronous(primary: Cluster, standby_names: str) -> None:
    """``synchronous_standby_names`` on the primary ('' = acknowledge on the primary alone), reloaded."""
    primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{standby_names}'")
    primary.sql("SELECT pg_reload_conf()")


def wait_streaming(primary: Cluster, name: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = primary.sql(f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}' "
                           "AND state = 'streaming'")
        if rows:
            return
        time.sleep(0.2)
    raise RuntimeError(f"standby {name} is not streaming")


def promote(c: Cluster) -> None:
    run([pg_bin("pg_ctl"), "-D", str(c.data), "-w", "-t", "60", "promote"], timeout=90)


def is_up(c: Cluster) -> bool:
    return subprocess.run([pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(c.port), "-t", "1"],
                          capture_output=True).returncode == 0


def restore(backup: Path, archive: Path, root: Path, *, name: str = "restored", target_time: str | None = None,
            target_name: str | None = None, port: int | None = None, timeout: float = 120) -> Cluster:
    """A fresh cluster from a base backup + archived WAL, recovered to the target and promoted."""
    c = Cluster(root / name, port or free_port())
    prepare_restore(backup, archive, c.data, target_time=target_time, target_name=target_name, port=c.port)
    return start_restored(c, timeout)


def start_restored(c: Cluster, timeout: float = 120) -> Cluster:
    """Start a data directory laid out by ``anpi hub restore`` and wait until it has promoted itself."""
    _conf(c, [f"unix_socket_directories = '{c.socket_dir}'"])
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{RUN_AS}:{RUN_AS}", str(c.data)], check=True)
    start(c)
    deadline = time.time() + timeout
    while c.sql("SELECT pg_is_in_recovery()")[0][0]:
        if time.time() > deadline:
            raise RuntimeError("restored cluster did not finish recovery")
        time.sleep(0.2)
    return c


def destroy(root: Path, clusters: list[Cluster]) -> None:
    """Stop every cluster (immediate) and remove the directory."""
    for c in clusters:
        stop(c, "immediate")
    shutil.rmtree(root, ignore_errors=True)
