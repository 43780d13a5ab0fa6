"""Event types and payload shapes.

Every change a shelter makes that the hub must learn about is one immutable event.  Payloads
are frozen dataclasses carrying a version ``v``; unknown keys (written by a newer version of
Anpi) are kept in ``extra`` and written back unchanged, so an old laptop never strips data a
newer hub understands.  Dates and times travel as ISO-8601 strings.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, ClassVar, Mapping, Sequence

from sync.canonical import canonical_json
from sync.errors import InvalidEvent

STAY_KINDS = ("check_in", "check_out", "transfer")
DECISIONS = ("auto", "review", "none", "confirmed", "rejected", "not_resident")
#: decisions that link an evacuee to a resident (宛名番号) on the hub
LINKING_DECISIONS = ("auto", "confirmed")
#: decisions that undo an earlier link of the same evacuee
UNLINKING_DECISIONS = ("rejected", "not_resident", "none")


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _iso(value: Any) -> Any:
    """Accept datetime/date objects from services but always store ISO strings."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class EventPayload:
    """Base class.  Subclasses set ``TYPE`` and list their fields; ``extra`` keeps unknown keys."""

    TYPE: ClassVar[str] = ""
    #: fields holding dates/times, normalised to ISO strings on construction
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self.TIME_FIELDS:
            object.__setattr__(self, name, _iso(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InvalidEvent` when the payload is unusable; subclasses extend."""

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(getattr(self, "extra", {}) or {})
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            out[f.name] = getattr(self, f.name)
        return out

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EventPayload":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: data[k] for k in known if k in data}
        extra = {k: v for k, v in data.items() if k not in known}
        try:
            return cls(**kwargs, extra=extra)  # type: ignore[call-arg]
        except TypeError as exc:
            raise InvalidEvent(f"{cls.TYPE}: {exc}") from exc

    @property
    def type(self) -> str:
        return self.TYPE


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise InvalidEvent(msg)


@dataclass(frozen=True)
class EvacueeRegistered(EventPayload):
    TYPE: ClassVar[str] = "evacuee.registered"
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("registered_at",)
    evacuee_id: str
    shelter_code: str
    external_key: str | None = None
    name: str | None = None
    name_kana: str | None = None
    birth_date_raw: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    address: str | None = None
    phone: str | None = None
    household_key: str | None = None
    care: dict[str, Any] = field(default_factory=dict)
    consents: dict[str, Any] = field(default_factory=dict)
    registered_at: str | None = None
    # 様式第1号 items the 安否照会 desk may read out (see EVACUEE_FORM_FIELDS); optional, so
    # registrations of older laptops stay valid, and an older hub keeps them in hub_evacuee.extra
    nationality: str | None = None  # ⑥ 国籍
    identifying_info: str | None = None  # ⑦ 通称・旧姓・特徴 …
    injury: str | None = None  # ⑧ 負傷・疾病
    injury_state: str | None = None  # ⑨ その状況
    current_location: str | None = None  # ⑩ 居所 within the shelter (体育館A …)
    contact: str | None = None  # ⑪ 連絡先
    v: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(bool(self.evacuee_id), "evacuee.registered needs evacuee_id")
        _require(bool(self.shelter_code), "evacuee.registered needs shelter_code")
        object.__setattr__(self, "birth_date", _iso(self.birth_date))


#: evacuee fields an ``evacuee.updated`` event may change
EVACUEE_FIELDS = (
    "external_key", "name", "name_kana", "birth_date_raw", "birth_date", "sex", "address", "phone",
    "household_key", "care", "consents", "shelter_code",
)
#: 様式第1号 fields an ``evacuee.registered`` carries and an ``evacuee.updated`` may change, which the
#: hub keeps in ``hub_evacuee.extra`` (it has no column for them: apply stores any field outside
#: EVACUEE_FIELDS there, with the same sequential/concurrent edit rules), so hubs and laptops of
#: any version exchange them without a schema change
EVACUEE_FORM_FIELDS = ("nationality", "identifying_info", "injury", "injury_state", "current_location", "contact")


@dataclass(frozen=True)
class EvacueeUpdated(EventPayload):
    """``changes`` is ``{field: {"old": value_seen_by_staff, "new": value_written}}``.

    Carrying the old value is what lets the hub tell a sequential edit from a concurrent one.
    Fields are those of EVACUEE_FIELDS or EVACUEE_FORM_FIELDS (the latter land in the hub's
    ``extra``, like any field a newer laptop may send).
    """

    TYPE: ClassVar[str] = "evacuee.updated"
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("at",)
    evacuee_id: str
    changes: dict[str, dict[str, Any]]
    at: str | None = None
    by_user: str | None = None
    v: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(bool(self.evacuee_id), "evacuee.updated needs evacuee_id")
        _require(isinstance(self.changes, dict) and bool(self.changes), "evacuee.updated needs changes")
        for name, change in self.changes.items():
            _require(isinstance(change, dict) and "new" in change,
                     f"evacuee.updated change for {name!r} needs {{'old':…, 'new':…}}")


@dataclass(frozen=True)
class StayRecorded(EventPayload):
    TYPE: ClassVar[str] = "stay.recorded"
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("at",)
    stay_id: str
    evacuee_id: str
    kind: str
    at: str
    destination: str | None = None
    shelter_code: str | None = None
    v: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(self.kind in STAY_KINDS, f"stay.recorded kind must be one of {STAY_KINDS}, got {self.kind!r}")
        _require(bool(self.stay_id) and bool(self.evacuee_id), "stay.recorded needs stay_id and evacuee_id")


@dataclass(frozen=True)
class MatchDecided(EventPayload):
    TYPE: ClassVar[str] = "match.decided"
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("at", "snapshot_as_of")
    decision_id: str
    evacuee_id: str
    resident_id: str | None
    decision: str
    at: str
    snapshot_as_of: str | None = None
    score: float | None = None
    reasons: str | None = None
    by_user: str | None = None
    municipality_code: str | None = None
    v: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(self.decision in DECISIONS, f"match.decided decision must be one of {DECISIONS}, got {self.decision!r}")
        _require(bool(self.decision_id) and bool(self.evacuee_id), "match.decided needs decision_id and evacuee_id")
        if self.decision in LINKING_DECISIONS:
            _require(bool(self.resident_id), f"match.decided {self.decision} needs resident_id")


@dataclass(frozen=True)
class CertificateIssued(EventPayload):
    TYPE: ClassVar[str] = "certificate.issued"
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("issued_at",)
    number: str
    kind: str
    resident_id: str | None
    household_id: str | None
    issued_at: str | None = None
    damage: str | None = None
    cause: str | None = None
    by_user: str | None = None
    reissue_of: str | None = None
    v: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(bool(self.number), "certificate.issued needs number")


@dataclass(frozen=True)
class CertificateVoided(EventPayload):
    TYPE: ClassVar[str] = "certificate.voided"
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("voided_at",)
    number: str
    kind: str | None = None
    resident_id: str | None = None
    household_id: str | None = None
    reason: str | None = None
    voided_at: str | None = None
    by_user: str | None = None
    v: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(bool(self.number), "certificate.voided needs number")


@dataclass(frozen=True)
class ConsentChanged(EventPayload):
    TYPE: ClassVar[str] = "consent.changed"
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("at",)
    evacuee_id: str
    consents: dict[str, Any]
    at: str | None = None
    by_user: str | None = None
    v: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(bool(self.evacuee_id), "consent.changed needs evacuee_id")
        _require(isinstance(self.consents, dict), "consent.changed consents must be an object")


#: what HQ may record about a resident (安否確認 by other means), as in the shelter's HqConfirmation
HQ_STATUSES = ("confirmed_other", "dead", "missing", "withdrawn")


@dataclass(frozen=True)
class HqRecorded(EventPayload):
    """HQ recorded a resident's state by other means (phone, visit: 他の手段で確認) or as reported
    dead / missing (死亡・行方不明), or withdrew its own earlier record (withdrawn).  Typed on a laptop (a one-laptop
    HQ or a shelter's HQ account) and sent to the hub, so the hub's safety list says the same."""

    TYPE: ClassVar[str] = "hq.recorded"
    TIME_FIELDS: ClassVar[tuple[str, ...]] = ("at",)
    record_id: str
    resident_id: str
    status: str
    at: str
    method: str | None = None
    note: str | None = None
    by_user: str | None = None
    municipality_code: str | None = None
    snapshot_as_of: str | None = None
    v: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(bool(self.record_id) and bool(self.resident_id), "hq.recorded needs record_id and resident_id")
        _require(self.status in HQ_STATUSES, f"hq.recorded status must be one of {HQ_STATUSES}, got {self.status!r}")


@dataclass(frozen=True)
class EvacueeRetracted(EventPayload):
    """Hub notice (device ``hub``): a registration the feed served is now protected (閲覧制限, or in a
    flagged person's household). Each laptop deletes what it pulled about that evacuee; nothing
    more about them is served. Additive: an older laptop stores it as an unknown event."""

    TYPE: ClassVar[str] = "evacuee.retracted"
    evacuee_id: str
    v: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(bool(self.evacuee_id), "evacuee.retracted needs evacuee_id")


@dataclass(frozen=True)
class UnknownEvent:
    """An event type this version does not know.  Stored, forwarded and round-tripped untouched."""

    type: str
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.payload)

    def to_json(self) -> str:
        return canonical_json(self.payload)


EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.TYPE: cls
    for cls in (EvacueeRegistered, EvacueeUpdated, StayRecorded, MatchDecided,
                CertificateIssued, CertificateVoided, ConsentChanged, HqRecorded, EvacueeRetracted)
}

Event = EventPayload | UnknownEvent


def parse_event(event_type: str, payload: Mapping[str, Any]) -> Event:
    """Turn a stored/wire payload back into its typed form (unknown types stay raw)."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        return UnknownEvent(event_type, dict(payload))
    return cls.from_dict(payload)


def desired_link(decisions: Sequence[Any]) -> Any | None:
    """Fold one evacuee's decisions (sorted by at, decision_id) into the link they imply."""
    current = None
    for d in decisions:
        if d.decision in LINKING_DECISIONS and d.person_key:
            current = d
        elif d.decision in UNLINKING_DECISIONS:
            current = None
        elif d.decision == "rejected":
            if current is not None and (d.person_key is None or d.person_key == current.person_key):
                current = None
    return current
