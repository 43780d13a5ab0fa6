"""Arrival benchmark: households typed through the 受付 screen in Chromium, keyboard only.

50 households of 1–5 people (fixtures: a synthetic registry and people drawn from it, some of them
non-residents; names in kanji, kana and romaji, birth dates as era dates, western dates and ages)
are typed at a fixed speed into `anpi serve`. Printed per household: keystrokes other than the
characters of names, readings, dates and addresses (Enter, Tab, arrows, one-key choices, a
Ctrl+Enter counts as one), seconds, and what each person ended as — L linked to a resident, R in
照合確認 (review), N none (or no decision at all). At the end: per-person keystrokes, residents
linked or in review, and wrong links (linked to another resident than the truth).

    python bench/intake_bench.py [--residents 20000] [--households 50] [--delay-ms 30] [--app-root DIR]

`--app-root` serves another checkout (e.g. `git archive main | tar -x -C /tmp/anpi-main`) with
the same data and the same typist, for before/after figures. Targets: ≤ 6 such keystrokes per
person; every resident linked or in review when the run ends.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import stop  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TARGET_KEYS_PER_PERSON = 6.0
_SETUP = """
import sys
from datetime import date
from sqlmodel import Session
from app.db import open_shelter_db
from app.services import accounts
from app.services.registry import import_registry
from app.db_crypto import connect as db_connect
engine = open_shelter_db(sys.argv[1])
import_registry(engine, sys.argv[2], as_of=date.fromisoformat(sys.argv[3]))
with Session(engine) as s:
    accounts.add_user(s, "ボランティア", "staff", "1234")
    s.commit()
engine.dispose()
"""


def households(out: Path, residents: int, wanted: int, seed: int) -> tuple[Any, list[list[dict[str, str]]]]:
    """Arrival groups of 1–5 people from the fixtures' roster, with the truth for each person."""
    from fixtures.generate import make_dataset

    ds = make_dataset(out, residents=residents, evacuees=max(400, wanted * 8), seed=seed, encoding="utf-8",
                      profile="anpi", roster_format="csv", snapshot_date=date(2026, 10, 31))
    with ds.roster_path.open(encoding="utf-8-sig") as f:
        rows = {r["受付番号"]: r for r in csv.DictReader(f)}
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    with ds.truth_path.open(encoding="utf-8") as f:
        for t in csv.DictReader(f):
            r = rows.get(t["evacuee_id"])
            if r is not None and (r["氏名"].strip() or r["ふりがな"].strip()):
                groups[t["group"]].append({**r, "truth": t["resident_id"], "category": t["category"]})
    picked = [g for g in groups.values() if 1 <= len(g) <= 5][:wanted]
    return ds, picked


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app_root: Path, db: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(app_root), "ANPI_AUTO_LOCK_SECONDS": "3600"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--db", str(db), "serve", "--port", str(port)],
                            cwd=app_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise SystemExit("anpi serve did not start")


class Typist:
    """Types at a fixed speed and counts every key that is not part of the content."""

    def __init__(self, page: Any, delay_ms: int) -> None:
        self.page, self.delay, self.keys = page, delay_ms, 0

    def text(self, s: str) -> None:
        if s:
            self.page.keyboard.type(s, delay=self.delay)

    def key(self, k: str, n: int = 1) -> None:
        for _ in range(n):
            self.page.keyboard.press(k)
            self.keys += 1

    def active(self) -> str:
        return self.page.evaluate("document.activeElement ? (document.activeElement.id || document.activeElement.className) : ''")

    def tab_to(self, want: str, limit: int = 80) -> bool:
        for _ in range(limit):
            a = self.active()
            if a == want or want in a.split():
                return True
            self.key("Tab")
        return False


def _sex_keys(typed: str) -> int:
    """ArrowDown presses on the 性別 list (未選択, 男, 女): what the old form needs."""
    return {"男": 1, "M": 1, "1": 1, "女": 2, "F": 2, "2": 2}.get(typed.strip().upper(), 0)


def _one_key(typed: str) -> str:
    return {"男": "1", "M": "1", "1": "1", "女": "2", "F": "2", "2": "2"}.get(typed.strip().upper(), "")


def type_new(t: Typist, members: list[dict[str, str]]) -> None:
    """This branch's form: Enter follows name → (reading) → birth → sex (1/2 or Enter) → the next row."""
    t.text(members[0]["住所"])
    t.key("Enter")
    for i, m in enumerate(members):
        t.text(m["氏名"] or m["ふりがな"])
        t.key("Enter")
        if t.active() == f"m-{i}-name_kana":
            t.text(m["ふりがな"] if m["氏名"] else "")
            t.key("Enter")
        t.text(m["生年月日"])
        t.key("Enter")
        k = _one_key(m["性別"])
        t.key(k or "Enter")  # 1 男 / 2 女 choose and move on; Enter leaves it 未選択
    t.key("Control+Enter")  # the new empty row is left alone: register the household


def type_old(t: Typist, members: list[dict[str, str]]) -> None:
    """The form on main: Tab between fields, pick the first candidate shown, ＋家族を追加, Enter submits."""
    t.text(members[0]["住所"])
    for i, m in enumerate(members):
        if i > 0:
            t.tab_to("add-member")
            t.key("Enter")
        else:
            t.tab_to(f"m-{i}-name")
        t.text(m["氏名"] or m["ふりがな"])
        t.key("Tab")
        t.text(m["ふりがな"] if m["氏名"] else "")
        t.key("Tab")
        t.text(m["生年月日"])
        t.key("Tab")
        t.key("ArrowDown", _sex_keys(m["性別"]))
        try:  # the volunteer takes the first candidate when one appears (the only way to link on main)
            t.page.wait_for_selector(f"#m-{i}-cands .pick, #m-{i}-cands .none", timeout=3000)
        except Exception:  # noqa: BLE001 - no candidate box: nothing to pick
            continue
        if t.page.locator(f"#m-{i}-cands .pick").count():
            if t.tab_to("pick", limit=10):
                t.key("Enter")
    if t.page.evaluate("document.activeElement.tagName") != "INPUT":
        t.key("Tab")  # Enter submits from a text field, not from the 性別 list
    t.key("Enter")


def finish(t: Typist, base: str, new_form: bool) -> list[str]:
    """Until the household is registered, as a volunteer would: a field the form marks as wrong is
    asked again and typed as 不明 (its keys counted); a possible duplicate is confirmed."""
    notes: list[str] = []
    page = t.page
    for _ in range(6):
        try:
            page.wait_for_url(f"{base}/intake?done=*", timeout=6000)
            return notes
        except Exception:  # noqa: BLE001 - still on the form: see why
            pass
        try:
            page.wait_for_load_state("load")
            bad = page.evaluate("(() => { const b = document.querySelector('[aria-invalid=\"true\"]');"
                                " return b ? b.id + ' ' + b.value : ''; })()")
        except Exception:  # noqa: BLE001 - the answer was arriving: look again
            continue
        if bad:
            field = bad.split(" ")[0]
            notes.append(f"fixed {bad}")
            page.locator(f"#{field}").focus()
            t.key("Control+a")
            t.text("不明" if field.endswith("birth_date") else "")
            t.key("Tab")
            page.wait_for_timeout(300)
        elif page.locator("#confirm_duplicates").count():
            notes.append("duplicate confirmed")
            t.tab_to("confirm_duplicates")
            t.key("Space")
        t.key("Control+Enter" if new_form else "Enter")
    shot = Path(tempfile.gettempdir()) / "intake-bench-stuck.png"
    page.screenshot(path=str(shot), full_page=True)
    raise SystemExit(f"household not registered: {notes} (screenshot {shot})")


def outcomes(db: Path, shelter_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    con = db_connect(db)
    try:
        out: dict[str, tuple[str, str | None]] = {}
        for ev_id, decision, rid in con.execute(
                "SELECT evacuee_id, decision, resident_id FROM matchdecision ORDER BY at, id"):
            out[ev_id] = (decision, rid)
        return out
    finally:
        con.close()


def run(args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    app_root = Path(args.app_root).resolve() if args.app_root else ROOT
    with tempfile.TemporaryDirectory(prefix="anpi-intake-") as tmp:
        ds, groups = households(Path(tmp) / "data", args.residents, args.households, args.seed)
        db = Path(tmp) / "shelter.db"
        subprocess.run([sys.executable, "-c", _SETUP, str(db), str(ds.registry_path), "2026-10-31"],
                       cwd=app_root, env={**os.environ, "PYTHONPATH": str(app_root)}, check=True)
        port = free_port()
        proc = start_server(app_root, db, port)
        base = f"http://127.0.0.1:{port}"
        rows: list[dict[str, Any]] = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ja-JP").new_page()
                page.goto(f"{base}/switch")
                page.get_by_text("ボランティア", exact=True).first.click()
                page.keyboard.type("1234")
                page.keyboard.press("Enter")
                page.wait_for_url(f"{base}/dashboard")
                page.goto(f"{base}/intake")
                new_form = page.locator("[data-quick]").count() > 0
                time.sleep(3)  # the matcher index is built in the background at start-up
                for n, members in enumerate(groups, 1):
                    page.goto(f"{base}/intake")
                    page.wait_for_selector("#address")
                    t = Typist(page, args.delay_ms)
                    start = time.perf_counter()
                    (type_new if new_form else type_old)(t, members)
                    notes = finish(t, base, new_form)
                    secs = time.perf_counter() - start
                    key = page.url.split("done=")[1]
                    rows.append({"n": n, "members": members, "keys": t.keys, "seconds": secs, "household": key,
                                 "notes": notes})
                browser.close()
        finally:
            stop(proc)
        report(db, rows, new_form, app_root)
    return 0


def report(db: Path, rows: list[dict[str, Any]], new_form: bool, app_root: Path) -> None:
    con = db_connect(db)
    evs = defaultdict(list)
    for ev_id, hh, name, kana in con.execute(
            "SELECT id, household_key, name_raw, name_kana_raw FROM evacuee ORDER BY created_at, id"):
        evs[hh].append(ev_id)
    con.close()
    dec = outcomes(db, [])
    people = keys = linked = review = none = residents = res_ok = wrong = 0
    print(f"intake bench: {app_root} ({'Enter form' if new_form else 'Tab form (main)'})")
    print(f"{'hh':>3} {'n':>2} {'keys':>5} {'k/p':>5} {'sec':>6}  outcome")
    for r in rows:
        marks = []
        for m, ev_id in zip(r["members"], evs.get(r["household"], [])):
            d, rid = dec.get(ev_id, ("none", None))
            mark = "L" if d in ("auto", "confirmed") else "R" if d == "review" else "N"
            marks.append(mark)
            is_res = bool(m["truth"])
            residents += is_res
            if mark == "L":
                linked += 1
                if rid != m["truth"]:
                    wrong += 1
                    mark += "!"
            elif mark == "R":
                review += 1
            else:
                none += 1
            res_ok += is_res and mark[0] in "LR"
        people += len(r["members"])
        keys += r["keys"]
        print(f"{r['n']:>3} {len(r['members']):>2} {r['keys']:>5} {r['keys'] / len(r['members']):>5.1f} "
              f"{r['seconds']:>6.1f}  {' '.join(marks)}" + (f"   ({'; '.join(r['notes'])})" if r["notes"] else ""))
    print(f"people {people}: keystrokes other than content {keys} = {keys / max(people, 1):.2f} per person "
          f"(target ≤ {TARGET_KEYS_PER_PERSON})")
    print(f"seconds per household: {sum(r['seconds'] for r in rows) / max(len(rows), 1):.1f} mean")
    print(f"linked {linked}, review {review}, none {none}; residents {residents}: linked or in review {res_ok} "
          f"({'all' if res_ok == residents else 'NOT all'}); wrong links {wrong}")
    print(json.dumps({"people": people, "keys_per_person": round(keys / max(people, 1), 2), "linked": linked,
                      "review": review, "none": none, "residents": residents, "residents_linked_or_review": res_ok,
                      "wrong_links": wrong}, ensure_ascii=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--residents", type=int, default=20000)
    ap.add_argument("--households", type=int, default=50)
    ap.add_argument("--delay-ms", type=int, default=30, help="delay between typed characters (fixed typing speed)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--app-root", default="", help="another checkout to serve (before/after figures)")
    return run(ap.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
