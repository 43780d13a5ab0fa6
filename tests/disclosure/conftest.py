"""A shelter whose registry flags a mother (閲覧制限) and not her child, with staff of every role."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from tests.web.helpers import REGISTRY, Shelter, build_shelter, shelter_app

#: 1004 山﨑 花 is flagged (REGISTRY); her child 1009 in household H2 is not.
CHILD = ["1009", "H2", "山﨑", "陽", "ヤマザキ", "ヒナタ", "", "2015-04-01", "女", "子", "",
         "岩手県陸前高田市米崎町2-1", ""]
MOTHER_ADDR = "岩手県陸前高田市米崎町2-1"


@pytest.fixture
def family_shelter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shelter:
    """The web helpers' shelter with the flagged mother's child added to the registry."""
    import tests.web.helpers as h

    monkeypatch.setattr(h, "REGISTRY", [*REGISTRY, CHILD])
    return build_shelter(tmp_path)


@pytest.fixture
def app(family_shelter: Shelter):  # type: ignore[no-untyped-def]
    yield from shelter_app(family_shelter.db_path)


def register_child(app, **extra: str) -> str:  # type: ignore[no-untyped-def]
    """The child registers at intake (auto-linked to 1009); returns the evacuee id."""
    from app.services.reconcile import reconcile_all
    from app.services.roster import EvacueeInput, register

    with Session(app.state.engine, expire_on_commit=False) as s:
        ev = register(s, EvacueeInput(name="山﨑 陽", name_kana="やまざき ひなた", birth_date="2015-04-01", sex="女",
                                      address=MOTHER_ADDR, **extra), by="佐藤")
        s.commit()
    reconcile_all(app.state.engine)
    return ev.id
