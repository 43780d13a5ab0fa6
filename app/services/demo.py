"""`anpi demo`: a shelter database with a synthetic registry, evacuees and staff accounts.

Built from the same generator as the tests and benchmarks, so what a new user sees is what we
test against.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import Staff
from app.services.accounts import add_user
from app.services.registry import import_registry
from app.services.reconcile import reconcile_all
from app.services.roster import import_roster
from app.services.shelters import current_shelter

#: the demo database is encrypted like any other, with this passphrase (printed at start) unless
#: ANPI_PASSPHRASE says otherwise: its data is synthetic, and the README's run command must not prompt
DEMO_PASSPHRASE = "anpi-demo"
DEMO_ACCOUNTS = (("山田 花子", "staff", "1111"), ("佐々木 健", "staff", "2222"), ("窓口 一郎", "desk", "3333"),
                 ("本部 次郎", "hq", "4444"), ("管理 三郎", "admin", "9999"))


def build_demo(engine: Engine, residents: int = 3000, seed: int = 2011) -> list[tuple[str, str, str]]:
    """Fill an empty database; returns the accounts created (empty if the demo already exists)."""
    from fixtures.generate import make_dataset

    with Session(engine) as s:
        if s.exec(select(Staff)).first() is not None:
            return []
        current_shelter(s, "DEMO-01", "陸前高田市立第一中学校 体育館")
        for name, role, pin in DEMO_ACCOUNTS:
            add_user(s, name, role, pin)
        s.commit()
    with tempfile.TemporaryDirectory() as tmp:
        ds = make_dataset(Path(tmp), residents=residents, evacuees=max(20, residents // 50), seed=seed,
                          encoding="cp932", profile="anpi", roster_format="xlsx", snapshot_date=date(2026, 10, 31))
        import_registry(engine, ds.registry_path, encoding="cp932", gaiji_map=ds.gaiji_map_path,
                        as_of=date(2026, 10, 31), imported_by="demo")
        import_roster(engine, ds.roster_path, shelter_code="DEMO-01", by="demo", rejects_out=Path(tmp) / "rejects.csv",
                      pause=0)  # a new file nobody else writes to yet
    reconcile_all(engine)  # so the review queue and the dashboard have something to show
    return list(DEMO_ACCOUNTS)
