"""Several devices on the shelter's network (issue 15): households registered through `anpi serve
--lan` by 1 and then 5 simulated tablets at once, over HTTPS with the laptop's own certificate.

Everything stays on this machine's loopback: the server listens on 127.0.0.1; each simulated
tablet connects from its own loopback address (127.0.0.11, .12, …), so the server treats it as a
device on the shelter network, and it pairs with a one-time code the "laptop" (a client on
127.0.0.1, logged in as the administrator) shows. The certificate is pinned: the bench trusts
exactly the certificate whose fingerprint `anpi serve --lan` printed.

Each tablet has its own staff session and, per household: opens the 受付 form, asks the registry
candidates for each member while "typing" (GET /api/search), registers (POST /intake) and opens the
done page, with a think time spread between its requests (a person typing, compressed). Printed:
households/minute with 1 and with 5 devices, p50/p95 request latency, and the check that nothing is
lost or doubled (every acknowledged household is in the database once, with all its members, and
nothing else is). Last, the same family is sent by all 5 devices at the same moment, 3 times:
exactly one registration each time, the others get the duplicate warning (409).

    python bench/lan_bench.py [--residents 5000] [--seconds 45] [--think-ms 2000]

Targets: 5 devices ≥ 4× the households/minute of 1; p95 ≤ 300 ms (2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.intake_bench import free_port, households  # noqa: E402
from bench.processes import stop  # noqa: E402

PASSPHRASE = "anpi-bench"
DEVICES = 5
TARGET_SPEEDUP = 4.0
TARGET_P95_MS = 300.0
_SETUP = """
import sys
from datetime import date
from sqlmodel import Session
from app.db import open_shelter_db
from app.services import accounts
from app.services.registry import import_registry
engine = open_shelter_db(sys.argv[1])
import_registry(engine, sys.argv[2], as_of=date.fromisoformat(sys.argv[3]))
with Session(engine) as s:
    accounts.add_user(s, "管理", "admin", "9999")
    for i in range(1, int(sys.argv[4]) + 1):
        accounts.add_user(s, f"受付{i}", "staff", "1234")
    s.commit()
engine.dispose()
"""
_SEX = {"男": "男", "M": "男", "1": "男", "女": "女", "F": "女", "2": "女"}


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    if not m:
        raise SystemExit("no CSRF token on the page")
    return m.group(1)


def start_server(db: Path, port: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`anpi serve --lan` on 127.0.0.1; returns the process and the fingerprint it printed."""
    log = Path(tempfile.mkstemp(prefix="anpi-lan-bench-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(db), "serve", "--lan", "--host",
                                 "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"fingerprint: ([0-9A-F:]{95})", log.read_text(errors="replace"))
        if m:
            try:
                ssl.get_server_certificate(("127.0.0.1", port), timeout=2)
                return proc, m.group(1)
            except OSError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop(proc)
    raise SystemExit(f"anpi serve --lan did not start: {log.read_text(errors='replace')[-800:]}")


def pinned_context(port: int, fingerprint: str, folder: Path) -> ssl.SSLContext:
    """Trust exactly the certificate the server printed the fingerprint of."""
    from app.services.lan_tls import fingerprint_of

    pem = ssl.get_server_certificate(("127.0.0.1", port))
    if fingerprint_of(pem) != fingerprint:
        raise SystemExit("the certificate served is not the one anpi serve --lan printed")
    cert = folder / "pinned.pem"
    cert.write_text(pem)
    return ssl.create_default_context(cafile=str(cert))


@dataclass
class Device:
    """One tablet: its own source address, device cookie and staff session."""

    n: int
    client: httpx.Client
    latencies: list[float] = field(default_factory=list)
    acknowledged: list[tuple[str, int]] = field(default_factory=list)  # (household key, members)
    warned: int = 0
    refused: int = 0

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        t = time.perf_counter()
        r = self.client.request(method, url, **kw)
        self.latencies.append(time.perf_counter() - t)
        if r.status_code >= 500:
            raise SystemExit(f"device {self.n}: {method} {url} answered {r.status_code}")
        return r


def make_client(base: str, ctx: ssl.SSLContext, source: str) -> httpx.Client:
    transport = httpx.HTTPTransport(verify=ctx, local_address=source)
    return httpx.Client(base_url=base, transport=transport, timeout=60)


def log_in(c: httpx.Client, name: str, pin: str) -> None:
    page = c.get("/switch")
    m = re.search(r'name="user_id" value="([^"]+)"[^>]*>\s*<span class="tile-num"[^>]*>[^<]*</span>\s*'
                  r'<span class="tile-name">' + re.escape(name) + "<", page.text)
    if not m:
        raise SystemExit(f"{name} is not on the 交代 screen")
    r = c.post("/switch", data={"csrf_token": csrf_of(page.text), "user_id": m.group(1), "pin": pin})
    if r.status_code != 303:
        raise SystemExit(f"login {name}: {r.status_code}")


def pair_devices(base: str, ctx: ssl.SSLContext, count: int) -> list[Device]:
    """The laptop shows a code per tablet; each tablet pairs from its own address and logs in."""
    laptop = make_client(base, ctx, "127.0.0.1")
    log_in(laptop, "管理", "9999")
    out = []
    for i in range(1, count + 1):
        page = laptop.get("/admin/devices")
        shown = laptop.post("/admin/devices/code", data={"csrf_token": csrf_of(page.text)}, follow_redirects=True)
        code = "".join(re.search(r'id="pair-code-value">(\d{3}) (\d{3})<', shown.text).groups())  # type: ignore[union-attr]
        c = make_client(base, ctx, f"127.0.0.{10 + i}")
        if c.get("/dashboard").status_code != 303:
            raise SystemExit("an unpaired device was let in")
        form = c.get("/pair")
        r = c.post("/pair", data={"csrf_token": csrf_of(form.text), "name": f"タブレット{i}", "code": code})
        if r.status_code != 303:
            raise SystemExit(f"pairing device {i}: {r.status_code}")
        log_in(c, f"受付{i}", "1234")
        out.append(Device(i, c))
    laptop.close()
    return out


def form_fields(members: list[dict[str, str]], plain_dates: bool) -> dict[str, str]:
    fields = {"address": members[0]["住所"]}
    for i, m in enumerate(members):
        fields.update({f"m-{i}-name": m["氏名"], f"m-{i}-name_kana": m["ふりがな"],
                       f"m-{i}-birth_date": "" if plain_dates else m["生年月日"],
                       f"m-{i}-sex": _SEX.get(m["性別"].strip().upper(), "")})
    return fields


def register(dev: Device, members: list[dict[str, str]], think_s: float) -> None:
    """One household as a tablet sends it; a date the form refuses is left empty, as staff would."""
    steps = len(members) + 2
    page = dev.request("GET", "/intake")
    token = csrf_of(page.text)
    for m in members:
        time.sleep(think_s / steps)
        dev.request("GET", "/api/search", params={"name": m["氏名"], "kana": m["ふりがな"], "birth": m["生年月日"]})
    time.sleep(think_s / steps)
    for plain in (False, True):
        fields = {"csrf_token": token, **form_fields(members, plain)}
        r = dev.request("POST", "/intake", data=fields)
        if r.status_code == 409:  # someone with the same name and birth is here: staff look and confirm
            dev.warned += 1
            r = dev.request("POST", "/intake", data={**fields, "confirm_duplicates": "1"})
        if r.status_code == 303:
            key = r.headers["location"].split("done=")[1]
            dev.acknowledged.append((key, len(members)))
            dev.request("GET", r.headers["location"])
            return
    dev.refused += 1


def run_phase(devices: list[Device], work: list[list[list[dict[str, str]]]], seconds: float,
              think_s: float) -> float:
    """Every device registers its own households until the time is up; returns the elapsed time."""
    stop_at = time.monotonic() + seconds

    def loop(dev: Device, queue: list[list[dict[str, str]]]) -> None:
        for members in queue:
            if time.monotonic() >= stop_at:
                return
            register(dev, members, think_s)

    start = time.monotonic()
    threads = [threading.Thread(target=loop, args=(d, q)) for d, q in zip(devices, work)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start


def collide(devices: list[Device], rounds: int = 3) -> list[Counter[int]]:
    """All devices send the same new family at the same moment."""
    results = []
    for r in range(rounds):
        fields = {"address": "気仙町 衝突試験", "m-0-name": f"同時 太郎{r}", "m-0-birth_date": f"1960-01-{r + 10}",
                  "m-0-sex": "男", "m-1-name": f"同時 花子{r}", "m-1-birth_date": f"1962-02-{r + 10}", "m-1-sex": "女"}
        tokens = [csrf_of(d.request("GET", "/intake").text) for d in devices]
        barrier = threading.Barrier(len(devices))
        codes: Counter[int] = Counter()
        lock = threading.Lock()

        def send(dev: Device, token: str) -> None:
            barrier.wait()
            resp = dev.request("POST", "/intake", data={"csrf_token": token, **fields})
            with lock:
                codes[resp.status_code] += 1
            if resp.status_code == 303:
                dev.acknowledged.append((resp.headers["location"].split("done=")[1], 2))

        threads = [threading.Thread(target=send, args=(d, t)) for d, t in zip(devices, tokens)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results.append(codes)
    return results


def check_database(db: Path, devices: list[Device], before: int) -> dict[str, int]:
    """Lost: an acknowledged household missing or short of members. Doubled: a household stored
    twice, or more people stored than acknowledged."""
    from app.db_crypto import connect as db_connect

    con = db_connect(db)
    try:
        per_key = Counter(k for (k,) in con.execute("SELECT household_key FROM evacuee"))
        total = sum(per_key.values())
    finally:
        con.close()
    acked = [a for d in devices for a in d.acknowledged]
    keys = Counter(k for k, _ in acked)
    lost = sum(1 for k, n in acked if per_key.get(k, 0) < n)
    doubled = sum(c - 1 for c in keys.values() if c > 1) + sum(1 for k, n in acked if per_key.get(k, 0) > n)
    extra = total - before - sum(n for _, n in acked)
    return {"acknowledged": len(acked), "lost": lost, "doubled": doubled + max(0, extra), "unacknowledged_stored": max(0, extra)}


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] * 1000 if s else 0.0


def phase_figures(devices: list[Device], elapsed: float) -> dict[str, float]:
    lat = [x for d in devices for x in d.latencies]
    n = sum(len(d.acknowledged) for d in devices)
    return {"devices": len(devices), "households": n, "seconds": round(elapsed, 1),
            "households_per_minute": round(n * 60 / elapsed, 1), "requests": len(lat),
            "p50_ms": round(percentile(lat, 0.5), 1), "p95_ms": round(percentile(lat, 0.95), 1),
            "warned": sum(d.warned for d in devices), "refused": sum(d.refused for d in devices)}


def run(args: argparse.Namespace) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ANPI_PASSPHRASE": PASSPHRASE, "ANPI_AUTO_LOCK_SECONDS": "3600",
           "ANPI_SYNC_INTERVAL": "3600"}
    os.environ["ANPI_PASSPHRASE"] = PASSPHRASE
    with tempfile.TemporaryDirectory(prefix="anpi-lan-bench-") as tmp:
        ds, groups = households(Path(tmp) / "data", args.residents, args.households, args.seed)
        db = Path(tmp) / "shelter.db"
        subprocess.run([sys.executable, "-c", _SETUP, str(db), str(ds.registry_path), "2026-10-31", str(DEVICES)],
                       cwd=ROOT, env=env, check=True)
        port = free_port()
        proc, fingerprint = start_server(db, port, env)
        try:
            ctx = pinned_context(port, fingerprint, Path(tmp))
            base = f"https://127.0.0.1:{port}"
            devices = pair_devices(base, ctx, DEVICES)
            time.sleep(3)  # the registry index is built in the background at start-up
            half = len(groups) // (DEVICES + 1)
            one = run_phase(devices[:1], [groups[:half]], args.seconds, args.think_ms / 1000)
            single = phase_figures(devices[:1], one)
            for d in devices:
                d.latencies.clear()
            rest = groups[half:]
            work = [rest[i::DEVICES] for i in range(DEVICES)]
            acked_before = [list(d.acknowledged) for d in devices]
            for d in devices:
                d.acknowledged.clear()
            five = run_phase(devices, work, args.seconds, args.think_ms / 1000)
            multi = phase_figures(devices, five)
            for d, prev in zip(devices, acked_before):
                d.acknowledged[:0] = prev
            collisions = collide(devices)
            integrity = check_database(db, devices, before=0)
            for d in devices:
                d.client.close()
        finally:
            stop(proc)
    report(single, multi, collisions, integrity)
    return 0


def report(single: dict[str, float], multi: dict[str, float], collisions: list[Counter[int]],
           integrity: dict[str, int]) -> None:
    speedup = multi["households_per_minute"] / max(single["households_per_minute"], 1e-9)
    print("lan bench: anpi serve --lan on 127.0.0.1, HTTPS (certificate pinned), devices paired from 127.0.0.11-15")
    for f in (single, multi):
        print(f"{f['devices']} device(s): {f['households']} households in {f['seconds']} s = "
              f"{f['households_per_minute']} households/min; {f['requests']} requests, p50 {f['p50_ms']} ms, "
              f"p95 {f['p95_ms']} ms; duplicate warnings {f['warned']}, refused {f['refused']}")
    print(f"speed-up 5 vs 1: {speedup:.2f}x (target ≥ {TARGET_SPEEDUP}x: {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}); "
          f"p95 with 5 devices {multi['p95_ms']} ms (target ≤ {TARGET_P95_MS:.0f} ms: "
          f"{'met' if multi['p95_ms'] <= TARGET_P95_MS else 'NOT met'})")
    same = [dict(c) for c in collisions]
    ok = all(c.get(303, 0) == 1 and c.get(409, 0) == DEVICES - 1 for c in collisions)
    print(f"same family from {DEVICES} devices at once, {len(collisions)} times: {same} "
          f"({'one registration each time' if ok else 'NOT one registration each time'})")
    print(f"integrity: {integrity['acknowledged']} households acknowledged, lost {integrity['lost']}, "
          f"doubled {integrity['doubled']}")
    print(json.dumps({"one": single, "five": multi, "speedup": round(speedup, 2), "collisions": same,
                      "integrity": integrity}, ensure_ascii=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--residents", type=int, default=5000)
    ap.add_argument("--households", type=int, default=400, help="arrival groups drawn from the fixtures")
    ap.add_argument("--seconds", type=float, default=45, help="length of each phase (1 device, then 5)")
    ap.add_argument("--think-ms", type=float, default=2000, help="a person's time per household, spread between requests")
    ap.add_argument("--seed", type=int, default=11)
    return run(ap.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
