"""Registry pull over a satellite link (issue 16): bytes and time for a town of N residents.

A synthetic registry (``fixtures.generate.make_dataset``) is stored at a SQLite hub under a data
key; a laptop pulls it through :class:`bench.linkshaper.LinkShaper` (64 kbit/s, 600 ms, optional
cuts) with the chunked, compressed pull, and the bench prints the bytes that crossed the link and
the time, beside the size of the old single answer (raw file boxed and base64-encoded in JSON).

Usage::

    python bench/registry_pull_bench.py --residents 60000
    python bench/registry_pull_bench.py --residents 1000000 --size-only    # bytes only (no transfer)
    python bench/registry_pull_bench.py --residents 60000 --size-only --changed 0.01
        # then snapshot B (1 % of rows changed, moved, removed, added): the laptop holding A pulls
        # only the difference through the link (always transferred: it is small)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.linkshaper import LinkShaper  # noqa: E402
from sync import client  # noqa: E402
from sync.hub import registry, registry_pull, server, store, tenants  # noqa: E402

CODE, NAME = "034100", "陸前高田市"


def make_registry(tmp: Path, residents: int) -> Path:
    from fixtures.generate import make_dataset

    return Path(make_dataset(tmp / "town", residents=residents, evacuees=1, seed="rikuzentakata").registry_path)


def run_registry(tmp: Path, residents: int, *, kbps: float = 64.0, rtt: float = 600.0, cut: float = 0.0,
                 size_only: bool = False, changed: float = 0.0) -> dict[str, Any]:
    from app.hub_registry import store_at_hub
    from sync.bundles import crypto
    from tests.sync.helpers import ThreadedServer, make_shelter

    path = make_registry(tmp, residents)
    raw = path.read_bytes()
    key = registry.DataKey.generate()
    app = server.create_hub_app(f"sqlite:///{tmp / 'hub.db'}", data_key=key)
    engine = app.state.engine
    tenants.add_municipality(engine, CODE, NAME)
    store_at_hub(engine, key, CODE, path, imported_by="bench")
    out: dict[str, Any] = {"residents": residents, "file_bytes": len(raw),
                           "old_answer_bytes": len(crypto.b64e(b"\0" * (len(raw) + 40))) + 1200}
    with ThreadedServer(app) as srv:
        sh = make_shelter(tmp, "laptop")
        slot = store.create_enrolment(engine, "laptop", CODE)
        with httpx.Client() as http:
            client.enroll(sh.session, srv.url, slot.code, "laptop", http=http)
        with sh.session() as s:
            from sync import outbox

            dev = outbox.get_device(s)
            device = {"device_id": dev.device_id, "public_key": crypto.verify_key_b64(crypto.signing_key_from_b64(dev.signing_key)),
                      "municipality_code": CODE, "name": "laptop"}
        with engine.connect() as conn:
            snap = registry.latest_snapshot(conn, CODE)
        t = time.monotonic()
        blob = registry_pull.sealed_blob(engine, store.hub_identity(engine), key, device, snap.snapshot_id)
        out["hub_compress_seconds"] = round(time.monotonic() - t, 1)
        out["compressed_blob_bytes"] = len(blob)
        out["estimated_seconds_at_64kbps"] = round(len(blob) * 8 / 64000, 1)
        if not size_only:
            with LinkShaper(srv.port, kbps=kbps, rtt_ms=rtt, cut_every=cut or None) as link:
                t = time.monotonic()
                got = client.fetch_registry(sh.session, link.url)
                out.update(pulled_seconds=round(time.monotonic() - t, 1), wire_bytes=link.bytes_up + link.bytes_down,
                           cuts=link.cuts, kbps=kbps, rtt_ms=rtt, identical=got.data == raw)
        if changed:
            out.update(diff_pull(tmp, engine, key, srv.port, sh, device, raw, changed, kbps=kbps, rtt=rtt, cut=cut))
    engine.dispose()
    return out


def diff_pull(tmp: Path, engine: Any, key: Any, port: int, sh: Any, device: dict[str, Any], raw: bytes,
              changed: float, *, kbps: float, rtt: float, cut: float) -> dict[str, Any]:
    """Snapshot B = A with ``changed`` of its rows touched; the laptop holding A pulls B's difference."""
    import hashlib
    from datetime import date

    from app.hub_registry import store_at_hub
    from tests.sync.registry_changes import evolve

    b_path = tmp / "registry_b.csv"
    b_path.write_bytes(evolve(raw, changed))
    new = b_path.read_bytes()
    store_at_hub(engine, key, CODE, b_path, as_of=date(2099, 1, 1), imported_by="bench")
    with engine.connect() as conn:
        snap = registry.latest_snapshot(conn, CODE)
    t = time.monotonic()
    full = registry_pull.sealed_blob(engine, store.hub_identity(engine), key, device, snap.snapshot_id)
    a_sha = hashlib.sha256(raw).hexdigest()
    pkg = registry_pull.chunked_package(engine, store.hub_identity(engine), key, device, a_sha, a_sha)
    out: dict[str, Any] = {"diff_changed_fraction": changed, "diff_hub_seconds": round(time.monotonic() - t, 1),
                           "diff_full_blob_bytes": len(full), "diff_blob_bytes": pkg["blob"]["size"],
                           "diff_encoding": pkg["blob"]["encoding"]}
    with LinkShaper(port, kbps=kbps, rtt_ms=rtt, cut_every=cut or None) as link:
        t = time.monotonic()
        got = client.fetch_registry(sh.session, link.url, have=a_sha, base=(a_sha, raw))
        out.update(diff_pulled_seconds=round(time.monotonic() - t, 1), diff_wire_bytes=link.bytes_up + link.bytes_down,
                   diff_via=got.via, diff_identical=got.data == new)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=60000)
    ap.add_argument("--kbps", type=float, default=64.0)
    ap.add_argument("--rtt-ms", type=float, default=600.0)
    ap.add_argument("--cut-every", type=float, default=0.0)
    ap.add_argument("--size-only", action="store_true", help="only the bytes (no transfer through the link)")
    ap.add_argument("--changed", type=float, default=0.0,
                    help="then pull a snapshot with this share of rows changed as a difference (e.g. 0.01)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="anpi-regbench-") as d:
        got = run_registry(Path(d), args.residents, kbps=args.kbps, rtt=args.rtt_ms, cut=args.cut_every,
                           size_only=args.size_only, changed=args.changed)
    print(json.dumps(got, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
