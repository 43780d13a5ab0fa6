"""安否照会 desk at the hub (`/v1/hq/inquiries`): answer about anyone at any shelter of the
municipality, and the log. A thin face over `app.hub_inquiry`.

- `POST /v1/hq/inquiries` (desk, hq, admin): the desk form as JSON (the fields of
  `InquiryRequest`: inquirer_name, inquirer_address, inquirer_phone, id_proof, id_proof_note,
  relationship, purpose, sought_name, sought_kana, sought_birth, sought_address, give_up) →
  `{"id", "outcome": "answered"|"no_information"|"needs_detail", "needs_detail", "items", "answer_text"}`.
  `outcome` is what the desk may know: "not found", "refused" and "protected" are one
  "no_information" with the same text. Bad input → 400 `{"error": "invalid", "field", "detail", "detail_ja"}`.
- `GET /v1/hq/inquiries?outcome=&limit=` (hq, admin): the log with the real outcome; audited.
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from app import hub_inquiry
from app.api.hub import json_object
from app.services.errors import InvalidInput
from sync.hub import registry, tenants
from sync.hub.hq import HqCaller


def invalid(exc: InvalidInput) -> JSONResponse:
    return JSONResponse({"error": "invalid", "field": exc.field, "detail": str(exc), "detail_ja": exc.message_ja},
                        status_code=400)


def router(engine: Engine, caller: HqCaller, data_key: Callable[[], Any]) -> APIRouter:
    r = APIRouter()

    def key() -> registry.DataKey | None:
        return data_key() or registry.data_key_of(engine)

    @r.post("/v1/hq/inquiries")
    async def ask(request: Request) -> JSONResponse:
        raw = await request.body()

        def fn(u: tenants.HqUser) -> Any:
            try:
                body = json_object(raw)
                ans = hub_inquiry.answer_inquiry(engine, key(), u.municipality_code, hub_inquiry.request_from(body),
                                                 by=u.name, actor=f"hq:{u.name}")
            except InvalidInput as exc:
                return invalid(exc)
            return ans.for_desk()
        return await caller.call(request, fn, perm="desk")

    @r.get("/v1/hq/inquiries")
    async def log(request: Request, outcome: str = "", limit: int = 500) -> JSONResponse:
        def fn(u: tenants.HqUser) -> Any:
            try:
                return {"inquiries": hub_inquiry.list_inquiries(engine, u.municipality_code, outcome=outcome,
                                                                limit=limit)}
            except InvalidInput as exc:
                return invalid(exc)
        return await caller.call(request, fn, perm="hq", personal=True)

    return r
