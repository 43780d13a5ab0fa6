"""Time matching.person.registry_keys over synthetic registry rows.

    python bench/normalize_bench.py [ROWS]

Prints microseconds per row (budget: ~10–20 µs/row, i.e. a 1,000,000-row snapshot in 10–20 s).
Rows are synthetic: surnames with old-form kanji (髙 﨑 邉 齋 …), legacy kana without small
letters, half of them with 々, random addresses so the town-key cache mostly misses.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matching import person  # noqa: E402
from matching.address import town_key  # noqa: E402
from matching.person import registry_keys  # noqa: E402

FAMILIES = [
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("髙橋", "タカハシ"), ("高橋", "タカハシ"), ("田中", "タナカ"),
    ("渡邉", "ワタナベ"), ("渡辺", "ワタナベ"), ("伊藤", "イトウ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"),
    ("小林", "コバヤシ"), ("加藤", "カトウ"), ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"),
    ("山﨑", "ヤマザキ"), ("齋藤", "サイトウ"), ("松本", "マツモト"), ("井上", "イノウエ"), ("木村", "キムラ"),
    ("菅原", "スガワラ"), ("千葉", "チバ"), ("阿部", "アベ"), ("及川", "オイカワ"), ("熊谷", "クマガイ"),
    ("澤田", "サワダ"), ("濱田", "ハマダ"), ("一ノ瀬", "イチノセ"), ("大野", "オオノ"), ("𠮷田", "ヨシダ"),
]
GIVENS = [
    ("太郎", "タロウ"), ("花子", "ハナコ"), ("京子", "キヨウコ"), ("翔太", "シヨウタ"), ("美咲", "ミサキ"),
    ("健一", "ケンイチ"), ("幸子", "サチコ"), ("由美", "ユミ"), ("大輔", "ダイスケ"), ("さくら", "サクラ"),
    ("龍之介", "リュウノスケ"), ("恵", "メグミ"), ("眞一", "シンイチ"), ("勝", "マサル"), ("ひろし", "ヒロシ"),
]
PLACES = [
    "岩手県陸前高田市高田町字館の沖", "宮城県石巻市中央二丁目", "宮城県気仙沼市魚町",
    "岩手県上閉伊郡大槌町小鎚第32地割",
    "福島県南相馬市原町区本町", "宮城県仙台市青葉区一番町", "宮城県南三陸町志津川字五日町",
]


def make_rows(n: int, seed: int = 1) -> list[tuple]:
    rnd = random.Random(seed)
    base = date(1920, 1, 1)
    rows = []
    for _ in range(n):
        f, fk = rnd.choice(FAMILIES)
        g, gk = rnd.choice(GIVENS)
        birth = base + timedelta(days=rnd.randrange(0, 36500))
        addr = f"{rnd.choice(PLACES)}{rnd.randrange(1, 300)}番地{rnd.randrange(1, 20)}"
        rows.append((f, g, fk, gk, "", birth, rnd.choice("12"), addr))
    return rows


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rows = make_rows(n)
    registry_keys(*rows[0])  # warm up imports
    best = float("inf")
    for _ in range(3):
        # Start every run cold: no cached name parts, no cached town keys.
        town_key.cache_clear()
        person._KANJI_CACHE.clear()
        person._KANA_CACHE.clear()
        t0 = time.perf_counter()
        for r in rows:
            registry_keys(*r)
        best = min(best, time.perf_counter() - t0)
    print(f"registry_keys: {best / n * 1e6:.2f} µs/row over {n:,} synthetic rows "
          f"(best of 3, caches cleared before each run)")


if __name__ == "__main__":
    main()
