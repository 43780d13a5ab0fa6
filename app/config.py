"""Settings read from the environment, so the same build runs on a laptop and at the hub.

`Settings` is the one place the app reads an `ANPI_*` variable (the sync layer's own are
`sync.settings.SyncSettings`, declared the same way because `sync/` never imports `app/`).
To add one: a field `name: type = setting("ANPI_NAME", default, "what it changes")` below, then
`python -m app.config --markdown` and paste the table into README.md ("Settings");
`tests/app/test_settings.py` fails until README and code agree, and when a module outside these two
reads `ANPI_*` from `os.environ` itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from sync.settings import SyncSettings, describe, read_env, setting

__all__ = ["Settings", "SyncSettings", "cert_issuer_for", "settings_markdown"]


@dataclass(frozen=True)
class Settings:
    """Everything an operator may change without touching code."""

    db_path: Path = setting("ANPI_DB", Path("anpi.db"), "the shelter database file (`--db`)")
    host: str = setting("ANPI_HOST", "127.0.0.1", "address `anpi serve` listens on")
    port: int = setting("ANPI_PORT", 8080, "port `anpi serve` listens on")
    auto_lock_seconds: int = setting("ANPI_AUTO_LOCK_SECONDS", 300, "staff screen locks after this long idle")
    max_pin_failures: int = setting("ANPI_MAX_PIN_FAILURES", 5, "wrong PINs in a row before a name is locked on a device")
    pin_lockout_seconds: int = setting("ANPI_PIN_LOCKOUT_SECONDS", 300, "how long that lock lasts")
    # wrong PINs per client over every account (app/services/login_throttle.py)
    client_max_pin_failures: int = setting("ANPI_CLIENT_MAX_PIN_FAILURES", 20,
                                           "wrong PINs from one device over every account before it is locked out")
    client_pin_window_seconds: int = setting("ANPI_CLIENT_PIN_WINDOW_SECONDS", 300, "the window of that count")
    # request body limits, enforced while the body streams in (app/api/body_limit.py)
    roster_upload_max_bytes: int = setting("ANPI_ROSTER_UPLOAD_MAX_MB", 20, "largest roster upload", mb=True)
    registry_upload_max_bytes: int = setting("ANPI_REGISTRY_UPLOAD_MAX_MB", 1024, "largest registry upload", mb=True)
    pfif_upload_max_bytes: int = setting("ANPI_PFIF_UPLOAD_MAX_MB", 50, "largest PFIF import (shelter and hub)",
                                         mb=True)
    form_max_bytes: int = setting("ANPI_FORM_MAX_MB", 1, "largest other form or JSON body", mb=True)
    hub_push_max_bytes: int = setting("ANPI_HUB_PUSH_MAX_MB", 64, "largest push batch a laptop sends the hub",
                                      mb=True)
    hub_bundle_max_bytes: int = setting("ANPI_HUB_BUNDLE_MAX_MB", 512, "largest file `anpi hub bundle import` reads",
                                        mb=True)
    hub_body_max_bytes: int = setting("ANPI_HUB_BODY_MAX_MB", 1, "largest other body at the hub (HQ, desks)", mb=True)
    # automatic backups while `anpi serve` runs (None = off); see app/services/backup.py
    backup_dir: Path | None = setting("ANPI_BACKUP_DIR", None, "automatic backups while `anpi serve` runs (unset: off)")
    backup_interval_minutes: float = setting("ANPI_BACKUP_INTERVAL_MINUTES", 10, "minutes between automatic backups")
    backup_keep: int = setting("ANPI_BACKUP_KEEP", 24, "automatic backups kept")
    busy_timeout_seconds: float = setting("ANPI_BUSY_TIMEOUT_SECONDS", 10.0,
                                          "a write waits this long for the lock, then answers 503 busy")
    disk_warn_mb: int = setting("ANPI_DISK_WARN_MB", 500, "the dashboard warns below this much free disk (MB)")
    audit_key_file: Path | None = setting("ANPI_AUDIT_KEY_FILE", None,
                                          "the audit chain's key file (unset: `<db>.audit-key`)")
    passphrase: str | None = setting("ANPI_PASSPHRASE", None, "the shelter database's passphrase, for scripts",
                                     secret=True)
    sync_interval_seconds: float = setting("ANPI_SYNC_INTERVAL", 60, "seconds between background syncs of `anpi serve`")
    roster_chunk_seconds: float = setting("ANPI_ROSTER_CHUNK_SECONDS", 0.05,
                                          "a roster import writes this long at a time …")
    roster_pause_seconds: float = setting("ANPI_ROSTER_PAUSE_SECONDS", 0.2, "… then pauses this long for the desks")
    import_workers: int = setting("ANPI_IMPORT_WORKERS", 2, "`1`: a registry import uses one process")
    reconcile_workers: int = setting("ANPI_RECONCILE_WORKERS", 2, "`1`: `anpi reconcile` uses one process")
    pfif_expiry_days: int = setting("ANPI_PFIF_EXPIRY_DAYS", 365, "expiry of exported PFIF records (days)")
    cert_issuer: str = setting("ANPI_CERT_ISSUER", "",
                               "issuer printed on certificates (hub: `ANPI_CERT_ISSUER_<団体コード>` per municipality)")
    font_path: Path | None = setting("ANPI_FONT_PATH", None, "a Japanese TTF for PDFs instead of the bundled IPAexGothic")
    hub_list_cache_seconds: float = setting("ANPI_HUB_LIST_CACHE_SECONDS", 120,
                                            "the hub keeps a built safety list this long")
    hub_list_cache: int = setting("ANPI_HUB_LIST_CACHE", 4, "safety lists the hub keeps built")

    # 本人記入 kiosk (/self)
    self_idle_seconds: int = setting("ANPI_SELF_IDLE_SECONDS", 180, "本人記入 kiosk: idle seconds before the form is erased")
    self_max_entries: int = setting("ANPI_SELF_MAX_ENTRIES", 20, "本人記入 kiosk: forms sent per client address per window")
    self_max_requests: int = setting("ANPI_SELF_MAX_REQUESTS", 120, "本人記入 kiosk: requests per client address per window")
    self_window_seconds: int = setting("ANPI_SELF_WINDOW_SECONDS", 600, "本人記入 kiosk: the rate-limit window (seconds)")

    @classmethod
    def from_env(cls) -> "Settings":
        return read_env(cls)


def cert_issuer_for(municipality: str) -> str:
    """The hub's issuer for one municipality: `ANPI_CERT_ISSUER_<団体コード>` (one hub serves many towns,
    so one `ANPI_CERT_ISSUER` cannot name them all); "" when unset. A family of names, so not a field."""
    return os.environ.get(f"ANPI_CERT_ISSUER_{municipality}", "").strip()


def settings_markdown() -> str:
    """The README's settings table, from the two settings classes."""
    lines = ["| variable | default | what it changes |", "|---|---|---|"]
    for cls in (Settings, SyncSettings):
        for row in describe(cls):
            default = f"`{row['default']}`" if row["default"] else ""
            lines.append(f"| `{row['name']}` | {default} | {row['meaning']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m app.config --markdown")
    sys.stdout.write(settings_markdown())
