"""The SendGrid sandbox's Marketing Campaigns endpoints, and a JSON view of what it holds.

Paths under ``/_sandbox/sendgrid/v3/marketing`` speak SendGrid's wire format (the real
SDK talks to them when SENDGRID_API_KEY is unset); the fault switch of
``/_sandbox/sendgrid/faults`` applies to them as to sends (its ``to`` matches a contact's
email). Mounted with the other sandboxes, never in production.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import DbSession, RedisClient
from integrations.sandbox.sendgrid import (
    Fault,
    SandboxFaults,
    SendGridError,
    api_key_valid,
    down_error,
)
from integrations.sandbox.sendgrid_marketing import (
    RESERVED_FIELDS,
    MarketingInvalid,
    SandboxMarketing,
)
from models.marketing import SandboxContactView, SandboxListView

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])
BASE = "/sendgrid/v3/marketing"
_UNAUTHORIZED = SendGridError("The provided authorization grant is invalid, expired, or revoked")
_FAILED = SendGridError("Internal Server Error (sandbox fault)")
Authorization = Annotated[str | None, Header()]


def _errors(code: int, errors: list[SendGridError]) -> JSONResponse:
    return JSONResponse({"errors": [e.as_dict() for e in errors]}, status_code=code)


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


class _Gate:
    """The checks every marketing call passes first: the key, then the fault switch."""

    def __init__(self, authorization: str | None, redis: RedisClient) -> None:
        self.authorization = authorization
        self.redis = redis
        self.fault: Fault | None = None

    async def refuse(self, recipients: list[str]) -> JSONResponse | None:
        if not api_key_valid(self.authorization):
            return _errors(401, [_UNAUTHORIZED])
        self.fault = await SandboxFaults(self.redis).take(recipients)
        if self.fault is not None and self.fault.mode == "down":
            return _errors(self.fault.status, [down_error(self.fault.status)])
        return None

    def answer(self, status: int, body: dict[str, Any]) -> JSONResponse:
        """The success answer, or 500 after the work is kept (``accept_then_fail``)."""
        if self.fault is not None and self.fault.mode == "accept_then_fail":
            return _errors(500, [_FAILED])
        return JSONResponse(body, status_code=status)


@router.get(f"{BASE}/field_definitions", summary="SendGrid sandbox: custom field definitions")
async def field_definitions(
    session: DbSession, redis: RedisClient, authorization: Authorization = None
) -> Response:
    """SendGrid's `GET /v3/marketing/field_definitions`: custom and reserved fields."""
    gate = _Gate(authorization, redis)
    if refused := await gate.refuse([]):
        return refused
    custom = await SandboxMarketing(session).fields()
    reserved = [{"id": i, "name": n, "field_type": "Text"} for i, n in RESERVED_FIELDS]
    return gate.answer(
        200,
        {
            "custom_fields": custom,
            "reserved_fields": reserved,
            "_metadata": {"count": len(custom) + len(reserved)},
        },
    )


@router.post(f"{BASE}/field_definitions", summary="SendGrid sandbox: create a custom field")
async def create_field_definition(
    request: Request, session: DbSession, redis: RedisClient, authorization: Authorization = None
) -> Response:
    """SendGrid's `POST /v3/marketing/field_definitions` `{name, field_type}`: 200 with the
    field; 400 for a bad or taken name or an unknown type."""
    gate = _Gate(authorization, redis)
    if refused := await gate.refuse([]):
        return refused
    try:
        created = await SandboxMarketing(session).create_field(await _body(request))
    except MarketingInvalid as exc:
        return _errors(400, exc.errors)
    return gate.answer(200, created)


@router.get(f"{BASE}/lists", summary="SendGrid sandbox: lists")
async def lists(
    session: DbSession,
    redis: RedisClient,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    authorization: Authorization = None,
) -> Response:
    """SendGrid's `GET /v3/marketing/lists`, with each list's `contact_count`."""
    gate = _Gate(authorization, redis)
    if refused := await gate.refuse([]):
        return refused
    found = await SandboxMarketing(session).lists()
    return gate.answer(200, {"result": found[:page_size], "_metadata": {"count": len(found)}})


@router.post(f"{BASE}/lists", summary="SendGrid sandbox: create a list")
async def create_list(
    request: Request, session: DbSession, redis: RedisClient, authorization: Authorization = None
) -> Response:
    """SendGrid's `POST /v3/marketing/lists` `{name}`: 201 with the list; 400 for a
    missing or taken name."""
    gate = _Gate(authorization, redis)
    if refused := await gate.refuse([]):
        return refused
    try:
        created = await SandboxMarketing(session).create_list(await _body(request))
    except MarketingInvalid as exc:
        return _errors(400, exc.errors)
    return gate.answer(201, created)


@router.put(f"{BASE}/contacts", summary="SendGrid sandbox: add or update contacts")
async def upsert_contacts(
    request: Request, session: DbSession, redis: RedisClient, authorization: Authorization = None
) -> Response:
    """SendGrid's `PUT /v3/marketing/contacts` `{list_ids?, contacts: [{email, first_name?,
    last_name?, custom_fields?}]}`: upsert by email (omitted fields stay, lists add up),
    202 with a `job_id`; 400 with SendGrid-style `errors` for a bad contact, an unknown
    custom field or list id, or a value not of its field's type."""
    payload = await _body(request)
    marketing = SandboxMarketing(session)
    gate = _Gate(authorization, redis)
    if refused := await gate.refuse(marketing.upsert_recipients(payload)):
        return refused
    try:
        await marketing.check_upsert(payload)
    except MarketingInvalid as exc:
        return _errors(400, exc.errors)
    await marketing.upsert(payload)
    return gate.answer(202, {"job_id": str(uuid.uuid4())})


@router.post(f"{BASE}/contacts/search/emails", summary="SendGrid sandbox: contacts by email")
async def contacts_by_emails(
    request: Request, session: DbSession, redis: RedisClient, authorization: Authorization = None
) -> Response:
    """SendGrid's `POST /v3/marketing/contacts/search/emails` `{emails}`: 200 with a
    `result` per address (`contact` or `error`); 404 when none is found."""
    payload = await _body(request)
    emails = payload.get("emails") if isinstance(payload, dict) else None
    gate = _Gate(authorization, redis)
    wanted = [e for e in emails if isinstance(e, str)] if isinstance(emails, list) else []
    if refused := await gate.refuse([e.lower() for e in wanted]):
        return refused
    if not isinstance(emails, list) or not 1 <= len(emails) <= 100 or len(wanted) != len(emails):
        return _errors(400, [SendGridError("emails must be 1 to 100 email addresses", "emails")])
    found = await SandboxMarketing(session).by_emails(wanted)
    if not found:
        return _errors(404, [SendGridError("No contacts found")])
    result = {
        e.strip().lower(): (
            {"contact": found[e.strip().lower()]}
            if e.strip().lower() in found
            else {"error": "contact not found"}
        )
        for e in wanted
        if e.strip()
    }
    return gate.answer(200, {"result": result})


@router.delete(f"{BASE}/contacts", summary="SendGrid sandbox: delete contacts")
async def delete_contacts(
    session: DbSession,
    redis: RedisClient,
    ids: Annotated[str | None, Query(max_length=100_000)] = None,
    delete_all_contacts: str | None = None,
    authorization: Authorization = None,
) -> Response:
    """SendGrid's `DELETE /v3/marketing/contacts?ids=a,b`: 202 with a `job_id`; unknown
    ids are ignored. `delete_all_contacts` is refused (400) by the sandbox, which is
    shared by everything running on the stack."""
    marketing = SandboxMarketing(session)
    wanted = [i for i in (ids or "").split(",") if i.strip()]
    gate = _Gate(authorization, redis)
    if refused := await gate.refuse(await marketing.emails_of(wanted)):
        return refused
    if delete_all_contacts is not None or not wanted:
        return _errors(
            400, [SendGridError("ids is required (delete_all_contacts is not supported)", "ids")]
        )
    await marketing.delete_contacts(wanted)
    return gate.answer(202, {"job_id": str(uuid.uuid4())})


@router.get(
    "/mail/marketing/contacts",
    summary="Sandbox marketing contacts (JSON)",
    response_model=list[SandboxContactView],
)
async def marketing_contacts(
    session: DbSession,
    email: Annotated[str | None, Query(max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[SandboxContactView]:
    """The contacts the SendGrid sandbox holds, most recently updated first, with their
    lists and custom fields by name; optionally the one with `email`."""
    return await SandboxMarketing(session).contact_views(email, limit)


@router.get(
    "/mail/marketing/lists",
    summary="Sandbox marketing lists (JSON)",
    response_model=list[SandboxListView],
)
async def marketing_lists(session: DbSession) -> list[SandboxListView]:
    """The lists the SendGrid sandbox holds, with how many contacts each has."""
    return await SandboxMarketing(session).list_views()
