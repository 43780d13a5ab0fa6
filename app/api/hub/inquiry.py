"""安否照会 desk at the hub (`/v1/hq/inquiries`): answer about anyone at any shelter of the
municipality, and the log. A thin face over `app.hub_inquiry`.

- `POST /v1/hq/inquiries` (desk, hq, admin): the desk form as JSON (the fields of
  `InquiryRequest`: inquirer_name, inquirer_address, inquirer_phone, id_proof, id_proof_note,
  relationship, purpose, sought_name, sought_kana, sought_birth, sought_address, give_up) →
  `{"id", "outcome": "answered"|"no_information"|"needs_detail", "needs_detail", "items", "answer_text"}`.
  `outcome` is what the desk may know: "not found", "refused" and "protected" are one
  "no_information" with the same text. Errors answer in the one shape (`sync.http_errors`): a body that
  is not a JSON object of the form's shape → 400 `{"error": "bad_request", "field", "detail", "detail_ja"}`;
  a value the desk refuses → 422 `{"error": "invalid_input", "field", "detail", "detail_ja"}`.
- `GET /v1/hq/inquiries?outcome=&limit=` (hq, admin): the log with the real outcome; audited.
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import StrictBool
from sqlalchemy.engine import Engine

from app import hub_inquiry
from app.services.inquiry_rules import InquiryRequest
from sync.hub import registry, tenants
from sync.hub.bodies import Body, parse
from sync.hub.hq import HqCaller


class InquiryBody(Body):
    """``POST /v1/hq/inquiries``: the desk form (`InquiryRequest`'s fields; absent or null = empty).
    A value of the wrong type is a malformed body (400 naming the field); what the values mean is
    the desk's rule (`hub_inquiry.answer_inquiry`: 422 naming the field)."""

    inquirer_name: str | None = None
    inquirer_address: str | None = None
    inquirer_phone: str | None = None
    id_proof: str | None = None
    id_proof_note: str | None = None
    relationship: str | None = None
    purpose: str | None = None
    sought_name: str | None = None
    sought_kana: str | None = None
    sought_birth: str | None = None
    sought_address: str | None = None
    give_up: StrictBool | None = None

    def request(self) -> InquiryRequest:
        return InquiryRequest(**{k: v for k, v in self.model_dump().items() if v is not None})


def router(engine: Engine, caller: HqCaller, data_key: Callable[[], Any]) -> APIRouter:
    r = APIRouter()

    def key() -> registry.DataKey | None:
        return data_key() or registry.data_key_of(engine)

    @r.post("/v1/hq/inquiries")
    async def ask(request: Request) -> JSONResponse:
        raw = await request.body()

        def fn(u: tenants.HqUser) -> Any:
            ans = hub_inquiry.answer_inquiry(engine, key(), u.municipality_code, parse(InquiryBody, raw).request(),
                                             by=u.name, actor=f"hq:{u.name}")
            return ans.for_desk()
        return await caller.call(request, fn, perm="desk")

    @r.get("/v1/hq/inquiries")
    async def log(request: Request, outcome: str = "", limit: int = 500) -> JSONResponse:
        def fn(u: tenants.HqUser) -> Any:
            return {"inquiries": hub_inquiry.list_inquiries(engine, u.municipality_code, outcome=outcome, limit=limit)}
        return await caller.call(request, fn, perm="hq", personal=True)

    return r
