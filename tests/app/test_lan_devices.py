"""The pieces of `anpi serve --lan` below the web layer: the laptop's certificate (made once, kept in
the encrypted database, key written out only encrypted), the one-time pairing code, paired devices,
what counts as the laptop itself, and `anpi serve` refusing to open the LAN without --lan."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlmodel import Session
from typer.testing import CliRunner

from app.db import open_shelter_db
from app.services import devices, lan_tls


def test_the_certificate_is_made_once_and_its_key_leaves_the_database_encrypted(tmp_path: Path) -> None:
    engine = open_shelter_db(tmp_path / "s.db")
    try:
        with Session(engine) as s:
            first = lan_tls.identity(s, ["10.1.2.3"])
            s.commit()
            fp = first.fingerprint
        with Session(engine) as s:
            again = lan_tls.identity(s)
            files = lan_tls.write_tls_files(again, tmp_path / "tls")
        assert again.fingerprint == fp == lan_tls.fingerprint_of(again.cert_pem)
        assert len(fp.split(":")) == 32
        key_text = files.key_file.read_text()
        assert "ENCRYPTED PRIVATE KEY" in key_text
        assert (files.key_file.stat().st_mode & 0o077) == 0
        serialization.load_pem_private_key(key_text.encode(), password=files.key_password.encode())
        cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
        ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
        assert ipaddress.ip_address("10.1.2.3") in ips and ipaddress.ip_address("127.0.0.1") in ips
        assert lan_tls.spki_pin(again.cert_pem).endswith("=")
    finally:
        engine.dispose()
    raw = (tmp_path / "s.db").read_bytes()
    assert b"PRIVATE KEY" not in raw and b"BEGIN CERTIFICATE" not in raw  # the database file is encrypted


def test_a_pairing_code_is_single_use_short_lived_and_dies_after_wrong_tries() -> None:
    now = [0.0]
    codes = devices.PairingCodes(ttl_seconds=600, max_failures=3, clock=lambda: now[0])
    c = codes.issue().code
    assert len(c) == 6 and c.isdigit()
    assert codes.consume(f"{c[:3]} {c[3:]}") and not codes.consume(c)  # typed with a space, then used up
    c = codes.issue().code
    now[0] += 601
    assert codes.current() is None and not codes.consume(c)
    c = codes.issue().code
    wrong = f"{(int(c) + 1) % 10**6:06d}"
    assert not codes.consume(wrong) and not codes.consume(wrong) and not codes.consume(wrong)
    assert not codes.consume(c)
    old = codes.issue().code
    new = codes.issue().code
    if old != new:  # a new code on the laptop's screen closes the one shown before
        assert not codes.consume(old)
    assert codes.consume(new)


def test_only_the_laptops_own_browser_is_the_laptop() -> None:
    for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert devices.is_laptop(host), host
    for host in ("127.0.0.2", "192.168.1.20", "10.0.0.1", "fe80::1", "testclient", "", None, "localhost"):
        assert not devices.is_laptop(host), host


def test_paired_devices_and_revocation(tmp_path: Path) -> None:
    engine = open_shelter_db(tmp_path / "s.db")
    try:
        with Session(engine) as s:
            dev, token = devices.pair(s, "  受付  タブレット1 ", "192.168.1.20")
            s.commit()
            assert dev.name == "受付 タブレット1" and token not in dev.token_hash
            assert devices.device_for_token(s, token).id == dev.id  # type: ignore[union-attr]
            assert devices.device_for_token(s, token + "x") is None and devices.device_for_token(s, None) is None
            devices.revoke(s, dev.id, "管理")
            s.commit()
            assert devices.device_for_token(s, token) is None
            assert [d.id for d in devices.list_devices(s)] == [dev.id]
    finally:
        engine.dispose()


def test_serve_without_lan_stays_on_this_laptop(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.cli import app

    res = CliRunner().invoke(app, ["--db", str(tmp_path / "s.db"), "serve", "--host", "0.0.0.0"])
    assert res.exit_code != 0 and "--lan" in res.output
