"""Request body limits, enforced while the body streams in (shelter and hub).

Why in an ASGI middleware and not in each route: a route (or FastAPI's form parsing before it)
only runs after the body was read, and a 400 MB roster upload raised the server's memory from
340 MB to 1 GB. Here a `Content-Length` over the limit is answered 413 before a byte of the body
is read, and a body without one (chunked) is counted as it arrives and cut off at the limit; the
rest of it is discarded by the server (uvicorn) without being kept.

Limits are per path (the upload routes get the larger ones, every other route a small one) and
come from `app.config.Settings`. Staff screens get the answer in Japanese (an HTML page), JSON
clients `{"detail", "detail_ja", "limit_bytes"}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: (path prefix or exact path, limit in bytes): the first match wins; `default` otherwise
Rule = tuple[str, int]
TooLargePage = Callable[[Scope, int], Awaitable[Any]]  # builds the 413 response (an ASGI app)

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(Exception):
    """Raised from `receive` when the body passes the limit (the app's own answer is then dropped)."""


def megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f}" if n >= 1024 * 1024 else f"{n / (1024 * 1024):.2f}"


class BodyLimitMiddleware:
    """413 for any request body larger than its path's limit, without reading it into memory."""

    def __init__(self, app: ASGIApp, *, rules: Sequence[Rule], default: int, too_large: TooLargePage) -> None:
        self.app = app
        self.rules = list(rules)
        self.default = default
        self.too_large = too_large

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.rules:
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "GET") in _SAFE:
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await (await self.too_large(scope, limit))(scope, receive, send)
            return
        state = {"received": 0, "exceeded": False, "started": False}

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["exceeded"] = True
                    raise BodyTooLarge(f"request body over {limit} bytes")
            return message

        async def guarded(message: Message) -> None:
            if state["exceeded"] and not state["started"]:
                return  # the app's answer to a cut-off body (e.g. "error parsing the body"): ours follows
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not state["exceeded"]:
                raise
        if state["exceeded"] and not state["started"]:
            await (await self.too_large(scope, limit))(scope, _disconnected, send)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def message_ja(limit: int) -> str:
    return f"ファイル（送信データ）が大きすぎます。上限は {megabytes(limit)} MB です。分割するか、管理者に相談してください。"


def message_en(limit: int) -> str:
    return f"request body too large: the limit for this route is {limit} bytes ({megabytes(limit)} MB)"
