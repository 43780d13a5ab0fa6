"""One reading of kanji numerals for dates (昭和四十五年) and addresses (三丁目, 千二百番地)."""
from __future__ import annotations

import pytest

from matching.numerals import kanji_number


@pytest.mark.parametrize(("run", "value"), [
    ("四十五", 45), ("十", 10), ("三十一", 31), ("百二", 102), ("千二百", 1200), ("一九七〇", 1970), ("零", 0),
])
def test_kanji_number(run: str, value: int) -> None:
    assert kanji_number(run) == value
