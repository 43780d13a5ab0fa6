"""A later registry backup made from an earlier one: some residents changed, moved, removed, added.

Used by tests/sync/test_registry_diff.py and bench/registry_pull_bench.py (``--changed``) to build
snapshot B from snapshot A the way a town's registry evolves between two backups.
"""
from __future__ import annotations

import random


def evolve(data: bytes, fraction: float, seed: str = "b") -> bytes:
    """``fraction`` of the rows touched: half get a new address, a quarter move to the end of the
    file, an eighth are removed, and as many new residents (new 宛名番号) are added."""
    rng = random.Random(seed)
    nl = b"\r\n" if b"\r\n" in data[:4096] else b"\n"
    header, *rows = data.split(nl)
    if rows and rows[-1] == b"":
        rows.pop()
    n = max(8, int(len(rows) * fraction))
    picks = rng.sample(range(len(rows)), n)
    changed, moved = picks[: n // 2], picks[n // 2: n * 3 // 4]
    removed = set(picks[n * 3 // 4: n * 7 // 8])
    out = list(rows)
    for i in changed:
        cells = out[i].split(b",")
        cells[11] = cells[11] + "{}号室".format(rng.randint(101, 909)).encode("utf-8")
        out[i] = b",".join(cells)
    tail = [out[i] for i in moved]
    ids = {r.split(b",", 1)[0] for r in rows}
    added = []
    for i in rng.sample(range(len(rows)), n - len(changed) - len(moved) - len(removed)):
        rid = b""
        while not rid or rid in ids:
            rid = str(rng.randint(10**9, 10**10 - 1)).encode()
        ids.add(rid)
        added.append(rid + b"," + rows[i].split(b",", 1)[1])
    keep = [r for i, r in enumerate(out) if i not in removed and i not in set(moved)]
    return nl.join([header, *keep, *tail, *added]) + nl
