"""The shelter this laptop serves."""

from __future__ import annotations

from sqlmodel import Session, select

from app.models import Shelter

DEFAULT_CODE = "SHELTER-1"
DEFAULT_NAME = "避難所"


def current_shelter(session: Session, code: str | None = None, name: str | None = None) -> Shelter:
    """The shelter named by `code`, created on first use; without a code, the laptop's only one."""
    if code:
        shelter = session.exec(select(Shelter).where(Shelter.code == code)).first()
        if shelter is None:
            shelter = Shelter(code=code, name=name or code)
            session.add(shelter)
            session.flush()
        return shelter
    shelter = session.exec(select(Shelter).order_by(Shelter.created_at)).first()
    if shelter is None:
        shelter = Shelter(code=DEFAULT_CODE, name=name or DEFAULT_NAME)
        session.add(shelter)
        session.flush()
    return shelter
