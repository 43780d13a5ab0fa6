"""`anpi serve --lan` (issue 15): the laptop's certificate for its LAN listener, and what the laptop's
terminal shows so tablets can join (addresses, fingerprint, QR code)."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import typer

from app.cli_common import fail
from app.db import session as db_session
from app.services import lan_tls

LAN_DEFAULT_PORT = 8443
LAN_DEFAULT_HOST = "0.0.0.0"


def check_host(host: str, lan: bool) -> None:
    """Without --lan the service answers this laptop only (a tablet needs HTTPS and pairing)."""
    if lan:
        return
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        fail(f"--host {host}: without --lan anpi serve listens on this laptop only (127.0.0.1); "
             "use anpi serve --lan to let tablets on the shelter network in (HTTPS, pairing)")


def prepare(engine, host: str, port: int) -> tuple[lan_tls.LanInfo, lan_tls.TlsFiles]:  # type: ignore[no-untyped-def]
    """The certificate (made and stored in the database the first time) written out for the listener;
    the engine is closed afterwards (the service opens its own)."""
    try:
        with db_session(engine) as s:
            row = lan_tls.identity(s, [host])
            s.commit()
            files = lan_tls.write_tls_files(row)
    finally:
        engine.dispose()
    return lan_tls.lan_info(files.fingerprint, host, port), files


def banner(info: lan_tls.LanInfo, port: int) -> None:
    """On the laptop's terminal: where tablets connect and the fingerprint they check."""
    import segno

    typer.echo(f"serving the shelter network over HTTPS on port {port} (plain HTTP is refused)", err=True)
    typer.echo(f"this laptop: https://127.0.0.1:{port}/  (no pairing needed)", err=True)
    for url in info.urls:
        typer.echo(f"tablets:     {url}/pair  (pair with the code shown on 管理 > 端末)", err=True)
    typer.echo(f"certificate SHA-256 fingerprint: {info.fingerprint}", err=True)
    if info.urls:
        segno.make(f"{info.pair_url}#sha256={info.fingerprint.replace(':', '')}", error="m").terminal(compact=True)


def cleanup(files: lan_tls.TlsFiles) -> None:
    shutil.rmtree(Path(files.key_file).parent, ignore_errors=True)
