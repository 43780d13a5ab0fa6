"""Settings read from the environment, so the same build runs on a laptop and at the hub."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Everything an operator may change without touching code."""

    db_path: Path
    host: str
    port: int
    auto_lock_seconds: int
    max_pin_failures: int
    pin_lockout_seconds: int
    # wrong PINs per client over every account (app/services/login_throttle.py)
    client_max_pin_failures: int = 20
    client_pin_window_seconds: int = 300
    # request body limits in bytes, enforced while the body streams in (app/api/body_limit.py)
    roster_upload_max_bytes: int = 20 * 1024 * 1024
    registry_upload_max_bytes: int = 1024 * 1024 * 1024
    pfif_upload_max_bytes: int = 50 * 1024 * 1024
    form_max_bytes: int = 1024 * 1024  # every other body: forms and JSON
    hub_push_max_bytes: int = 64 * 1024 * 1024  # a laptop's signed batch of events
    hub_bundle_max_bytes: int = 512 * 1024 * 1024  # `anpi hub bundle import FILE` (read whole to verify)
    hub_body_max_bytes: int = 1024 * 1024  # HQ / desk JSON bodies at the hub
    # automatic backups while `anpi serve` runs (None = off); see app/services/backup.py
    backup_dir: Path | None = None
    backup_interval_minutes: float = 10
    backup_keep: int = 24
    # a write waits this long for the write lock, then the request answers 503 "busy, try again"
    busy_timeout_seconds: float = 10.0
    # the dashboard warns when the database's disk has less free space than this
    disk_warn_mb: int = 500
    # the secret that keys the audit chain (HMAC); never inside the database (app/services/audit_key.py)
    audit_key_file: Path | None = None
    # 本人記入 kiosk (/self): idle seconds before the form is erased; forms and requests per client
    self_idle_seconds: int = 180
    self_max_entries: int = 20  # forms sent per client address within self_window_seconds
    self_max_requests: int = 120  # any /self request per client address within self_window_seconds
    self_window_seconds: int = 600

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            db_path=Path(os.environ.get("ANPI_DB", "anpi.db")),
            host=os.environ.get("ANPI_HOST", "127.0.0.1"),
            port=int(os.environ.get("ANPI_PORT", "8080")),
            auto_lock_seconds=int(os.environ.get("ANPI_AUTO_LOCK_SECONDS", "300")),
            max_pin_failures=int(os.environ.get("ANPI_MAX_PIN_FAILURES", "5")),
            pin_lockout_seconds=int(os.environ.get("ANPI_PIN_LOCKOUT_SECONDS", "300")),
            backup_dir=Path(os.environ["ANPI_BACKUP_DIR"]) if os.environ.get("ANPI_BACKUP_DIR") else None,
            backup_interval_minutes=float(os.environ.get("ANPI_BACKUP_INTERVAL_MINUTES", "10")),
            backup_keep=int(os.environ.get("ANPI_BACKUP_KEEP", "24")),
            busy_timeout_seconds=float(os.environ.get("ANPI_BUSY_TIMEOUT_SECONDS", "10")),
            disk_warn_mb=int(os.environ.get("ANPI_DISK_WARN_MB", "500")),
            audit_key_file=Path(os.environ["ANPI_AUDIT_KEY_FILE"]) if os.environ.get("ANPI_AUDIT_KEY_FILE") else None,
            client_max_pin_failures=int(os.environ.get("ANPI_CLIENT_MAX_PIN_FAILURES", "20")),
            client_pin_window_seconds=int(os.environ.get("ANPI_CLIENT_PIN_WINDOW_SECONDS", "300")),
            self_idle_seconds=int(os.environ.get("ANPI_SELF_IDLE_SECONDS", "180")),
            self_max_entries=int(os.environ.get("ANPI_SELF_MAX_ENTRIES", "20")),
            self_max_requests=int(os.environ.get("ANPI_SELF_MAX_REQUESTS", "120")),
            self_window_seconds=int(os.environ.get("ANPI_SELF_WINDOW_SECONDS", "600")),
            roster_upload_max_bytes=_mb("ANPI_ROSTER_UPLOAD_MAX_MB", 20),
            registry_upload_max_bytes=_mb("ANPI_REGISTRY_UPLOAD_MAX_MB", 1024),
            pfif_upload_max_bytes=_mb("ANPI_PFIF_UPLOAD_MAX_MB", 50),
            form_max_bytes=_mb("ANPI_FORM_MAX_MB", 1),
            hub_push_max_bytes=_mb("ANPI_HUB_PUSH_MAX_MB", 64),
            hub_bundle_max_bytes=_mb("ANPI_HUB_BUNDLE_MAX_MB", 512),
            hub_body_max_bytes=_mb("ANPI_HUB_BODY_MAX_MB", 1),
        )


def _mb(name: str, default: float) -> int:
    """A size setting given in MB (decimals allowed) as bytes."""
    return int(float(os.environ.get(name, "") or default) * 1024 * 1024)
