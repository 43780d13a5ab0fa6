"""The JSON bodies the hub accepts, as pydantic models (one reading of each, no hand parsing).

A body that is not JSON, or not of its model's shape, is refused as :class:`sync.errors.BadRequest`
(400, "bad_request", ``sync.http_errors``) naming the field at fault (``field``, and a Japanese line for
staff screens); the values' *meaning* (a known
decision, a real device) is checked by the functions the routes call (409/422 there).
Unknown keys are ignored: a newer laptop may send more than this hub reads.
"""
from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from sync.errors import BadRequest

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EnrolBody(Body):
    """``POST /v1/enroll`` (the laptop proves it knows the code without sending it)."""

    code_id: str
    device_id: str
    public_key: str
    signature: str
    mac: str
    shelter_name: str | None = None


class PushBody(Body):
    """``POST /v1/push``: one batch of a laptop's events (each checked by ``store.validate_wire_events``)."""

    events: list[Any]
    laptop_time: Any = None


class EpochBody(Body):
    """``POST /v1/epoch``: a restored or forked laptop asks for a fresh epoch."""

    current_epoch: int = 0
    reason: str | None = None


class ReviewDecision(Body):
    """``POST /v1/hq/review/{item_id}``: cross-town (confirmed/rejected + resident) or field conflict (value)."""

    decision: str = ""
    event_id: str | None = None
    resident_id: str | None = None


class ForkApply(Body):
    """``POST /v1/hq/forks/apply``: these forks, or (absent) every open fork."""

    fork_ids: list[str] | None = None


_OBJECT = TypeAdapter(dict[str, Any])


def _refusal(exc: ValidationError) -> BadRequest:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    field = str(first.get("loc", ("body",))[0]) if first.get("loc") else "body"
    return BadRequest(f"{where}: {first.get('msg', 'malformed body')}", field, "送信内容の形式が正しくありません")


def parse(model: type[M], raw: bytes) -> M:
    """``raw`` (empty: ``{}``) as ``model``, or :class:`BadRequest` naming the field."""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _refusal(exc) from None


def parse_object(raw: bytes) -> dict[str, Any]:
    """A body that must be one JSON object, read by the function it is handed to."""
    try:
        return _OBJECT.validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _refusal(exc) from None
