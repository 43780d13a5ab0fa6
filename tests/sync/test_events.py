"""Event payloads: shapes, validation, canonical JSON, unknown keys surviving round trips."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from hypothesis import given, strategies as st

from sync import events as ev
from sync.canonical import canonical_json
from sync.errors import InvalidEvent

SAMPLES = [
    ev.EvacueeRegistered(evacuee_id="E1", shelter_code="S1", name="髙橋 花子", name_kana="タカハシ ハナコ",
                         birth_date_raw="昭和45年3月1日", birth_date=date(1970, 3, 1), sex="2",
                         care={"wheelchair": True}, consents={"share": False},
                         registered_at=datetime(2025, 1, 1, 9, 0, tzinfo=timezone.utc)),
    ev.EvacueeUpdated(evacuee_id="E1", changes={"phone": {"old": None, "new": "090"}}, at="2025-01-01T00:00:00Z"),
    ev.StayRecorded(stay_id="S1", evacuee_id="E1", kind="transfer", destination="第二中学校", at="2025-01-02"),
    ev.MatchDecided(decision_id="D1", evacuee_id="E1", resident_id="000123", decision="confirmed",
                    snapshot_as_of="2024-12-31", score=0.93, reasons="kana=exact", by_user="u1", at="2025-01-02"),
    ev.CertificateIssued(number="R7-0001", kind="risai", resident_id="000123", household_id="H9", damage="半壊"),
    ev.CertificateVoided(number="R7-0001", reason="typo"),
    ev.ConsentChanged(evacuee_id="E1", consents={"share": True}),
]


@pytest.mark.parametrize("e", SAMPLES, ids=lambda e: e.TYPE)
def test_round_trip_and_version(e: ev.EventPayload) -> None:
    d = json.loads(e.to_json())
    assert d["v"] == 1
    back = ev.parse_event(e.TYPE, d)
    assert back == e
    assert back.to_json() == e.to_json()


def test_dates_become_iso_strings() -> None:
    d = SAMPLES[0].to_dict()
    assert d["birth_date"] == "1970-03-01"
    assert d["registered_at"].startswith("2025-01-01T09:00:00")


@given(st.dictionaries(st.text(min_size=1).filter(lambda k: k not in {"evacuee_id", "consents", "at", "by_user", "v"}),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3)),
                       max_size=4))
def test_unknown_payload_keys_survive(extra: dict) -> None:
    payload = {"evacuee_id": "E1", "consents": {"a": 1}, "v": 2, **extra}
    e = ev.parse_event("consent.changed", payload)
    out = json.loads(e.to_json())
    assert {k: out[k] for k in payload} == payload  # newer version's keys and v kept
    assert set(out) - set(payload) <= {"at", "by_user"}  # only our own optional defaults added
    assert ev.parse_event("consent.changed", out).to_json() == e.to_json()


def test_unknown_event_type_is_kept_raw() -> None:
    e = ev.parse_event("shelter.closed", {"v": 1, "shelter_code": "S1"})
    assert isinstance(e, ev.UnknownEvent) and e.type == "shelter.closed"
    assert json.loads(e.to_json()) == {"v": 1, "shelter_code": "S1"}


@pytest.mark.parametrize("make", [
    lambda: ev.StayRecorded(stay_id="S", evacuee_id="E", kind="teleport", at="x"),
    lambda: ev.MatchDecided(decision_id="D", evacuee_id="E", resident_id=None, decision="confirmed", at="x"),
    lambda: ev.MatchDecided(decision_id="D", evacuee_id="E", resident_id="R", decision="maybe", at="x"),
    lambda: ev.EvacueeUpdated(evacuee_id="E", changes={}),
    lambda: ev.EvacueeUpdated(evacuee_id="E", changes={"phone": "no-dict"}),
    lambda: ev.EvacueeRegistered(evacuee_id="", shelter_code="S"),
])
def test_invalid_payloads_raise_our_error(make) -> None:  # noqa: ANN001
    with pytest.raises(InvalidEvent):
        make()


def test_canonical_json_is_key_order_independent() -> None:
    assert canonical_json({"b": 1, "a": "髙"}) == canonical_json({"a": "髙", "b": 1}) == '{"a":"髙","b":1}'
