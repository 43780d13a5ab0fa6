"""JSON routes of the desks at the hub (`/v1/hq/…`, bearer-token hub users), mounted by
`app.hub_app.create_app`. Each module exposes `router(engine, caller, data_key) -> APIRouter`."""

from __future__ import annotations

import json
from typing import Any

from app.services.errors import InvalidInput


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object (empty = {}); anything else is bad input named
    ``body`` — each route answers it as it answers its other bad input."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise InvalidInput("the body must be JSON", "送信内容がJSONではありません", "body") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", "送信内容の形式が正しくありません", "body")
    return body
