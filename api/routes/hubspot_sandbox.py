"""The HubSpot sandbox over HTTP: ``/_sandbox/hubspot/crm/…`` in HubSpot's wire format.

A Bearer token is required (any token will do). Fault switches (``PUT …/faults``): a
failure rate, added latency and a fixed status for every call. What the sandbox holds is
listed at ``/_sandbox/hubspot/contacts`` and ``/_sandbox/hubspot/deals`` (JSON) and shown
on ``/_sandbox/hubspot``.
"""

from __future__ import annotations

import asyncio
import html
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import DbSession, RedisClient
from api.routes.sandbox_faults import ProviderFaults
from integrations.sandbox.hubspot import HubSpotSandbox
from integrations.sandbox.hubspot_wire import HubSpotError, validation_error
from models.base import CamelModel
from models.hubspot_sandbox import SandboxHubSpotObject

router = APIRouter(prefix="/_sandbox/hubspot", tags=["sandbox"])
FAULTS_KEY = "sandbox:hubspot:faults"
_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITS",
}
_UNAUTHENTICATED = HubSpotError(
    401,
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    "INVALID_AUTHENTICATION",
)


class HubSpotFaults(ProviderFaults):
    """HubSpot's: the shared switches alone."""


class CrmRecord(CamelModel):
    id: str
    properties: dict[str, Any]
    associations: dict[str, list[str]]
    created_at: datetime
    updated_at: datetime


def _correlation_id() -> str:
    return str(uuid.uuid4())


def _error(exc: HubSpotError) -> JSONResponse:
    correlation = _correlation_id()
    return JSONResponse(
        exc.body(correlation),
        status_code=exc.status,
        headers={"X-HubSpot-Correlation-Id": correlation},
    )


async def _faults(redis: RedisClient) -> HubSpotFaults:
    return HubSpotFaults.model_validate_json(await redis.get(FAULTS_KEY) or "{}")


Call = Callable[[HubSpotSandbox, dict[str, Any]], Awaitable[dict[str, Any] | None]]


async def _call(
    request: Request, session: DbSession, redis: RedisClient, handler: Call, status: int = 200
) -> Response:
    """Authentication, faults and HubSpot's error shape around one sandbox operation."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(_UNAUTHENTICATED)
    faults = await _faults(redis)
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if (faults.status and not faults.failure_rate) or (
        faults.failure_rate and random.random() < faults.failure_rate
    ):
        code = faults.status or 500
        category = _CATEGORIES.get(code, "INTERNAL_ERROR" if code >= 500 else "VALIDATION_ERROR")
        return _error(HubSpotError(code, f"Sandbox fault: injected {code}.", category))
    body: dict[str, Any] = {}
    raw = await request.body()
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            return _error(validation_error(f"Invalid input JSON on line 1: {exc}"))
        if not isinstance(parsed, dict):
            return _error(validation_error("Invalid input JSON: expected an object"))
        body = parsed
    try:
        answer = await handler(HubSpotSandbox(session), body)
    except HubSpotError as exc:
        await session.rollback()  # nothing of a refused request stays
        return _error(exc)
    except (AttributeError, TypeError, ValueError) as exc:
        # JSON of the wrong shape (a string where an object belongs, say): HubSpot's 400.
        await session.rollback()
        return _error(validation_error(f"Invalid input JSON: {exc}"))
    if faults.lost_answer_rate and random.random() < faults.lost_answer_rate:
        # The change stands (the request still commits); only the answer is lost.
        return _error(HubSpotError(500, "Sandbox fault: answer lost.", "INTERNAL_ERROR"))
    headers = {"X-HubSpot-Correlation-Id": _correlation_id()}
    if answer is None:
        return Response(status_code=204, headers=headers)
    return JSONResponse(answer, status_code=status, headers=headers)


# --- HubSpot's API ---------------------------------------------------------------------


@router.post("/crm/v3/properties/{object_type}", summary="HubSpot sandbox: create a property")
async def create_property(
    object_type: str, request: Request, session: DbSession, redis: RedisClient
) -> Response:
    """`POST /crm/v3/properties/{objectType}`; 409 `OBJECT_ALREADY_EXISTS` for a taken name."""
    return await _call(
        request, session, redis, lambda s, b: s.create_property(object_type, b), status=201
    )


@router.post("/crm/v3/objects/{object_type}/batch/upsert", summary="HubSpot sandbox: batch upsert")
async def batch_upsert(
    object_type: str, request: Request, session: DbSession, redis: RedisClient
) -> Response:
    """Create or update records by a unique property (`idProperty`, e.g. `email`)."""
    return await _call(request, session, redis, lambda s, b: s.batch_upsert(object_type, b))


@router.post("/crm/v3/objects/{object_type}/search", summary="HubSpot sandbox: search")
async def search(
    object_type: str, request: Request, session: DbSession, redis: RedisClient
) -> Response:
    """`filterGroups` of `EQ`/`IN` filters, `limit` and `after` paging."""
    return await _call(request, session, redis, lambda s, b: s.search(object_type, b))


@router.post("/crm/v3/objects/{object_type}/gdpr-delete", summary="HubSpot sandbox: GDPR delete")
async def gdpr_delete(
    object_type: str, request: Request, session: DbSession, redis: RedisClient
) -> Response:
    """Permanently delete a record (`objectId`, or its email with `idProperty=email`)."""
    return await _call(request, session, redis, lambda s, b: s.gdpr_delete(object_type, b))


@router.post("/crm/v3/objects/{object_type}", summary="HubSpot sandbox: create a record")
async def create_object(
    object_type: str, request: Request, session: DbSession, redis: RedisClient
) -> Response:
    """201 with the record; 409 `CONFLICT` when a unique property value is taken."""
    return await _call(request, session, redis, lambda s, b: s.create(object_type, b), status=201)


@router.get("/crm/v3/objects/{object_type}/{object_id}", summary="HubSpot sandbox: read")
async def read_object(
    object_type: str,
    object_id: str,
    request: Request,
    session: DbSession,
    redis: RedisClient,
    id_property: Annotated[str | None, Query(alias="idProperty")] = None,
) -> Response:
    """By record id, or by a unique property's value with `idProperty`."""
    return await _call(
        request, session, redis, lambda s, b: s.read(object_type, object_id, id_property)
    )


@router.patch("/crm/v3/objects/{object_type}/{object_id}", summary="HubSpot sandbox: update")
async def update_object(
    object_type: str,
    object_id: str,
    request: Request,
    session: DbSession,
    redis: RedisClient,
    id_property: Annotated[str | None, Query(alias="idProperty")] = None,
) -> Response:
    """By record id, or by a unique property's value with `idProperty`; 404 if none."""
    return await _call(
        request, session, redis, lambda s, b: s.update(object_type, object_id, id_property, b)
    )


@router.put(
    "/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}",
    summary="HubSpot sandbox: default association",
)
async def associate_default(
    from_type: str,
    from_id: str,
    to_type: str,
    to_id: str,
    request: Request,
    session: DbSession,
    redis: RedisClient,
) -> Response:
    """Associate two records with the default (HubSpot-defined) type; idempotent."""
    return await _call(
        request,
        session,
        redis,
        lambda s, b: s.associate_default(from_type, from_id, to_type, to_id),
    )


# --- fault switches and what the sandbox holds ---------------------------------------------


@router.put(
    "/faults", status_code=204, response_class=Response, summary="HubSpot sandbox: set faults"
)
async def set_faults(body: HubSpotFaults, redis: RedisClient) -> Response:
    """Make the sandbox flaky: `failureRate` of calls answer `status` (default 500), after
    `latencyMs`; `status` alone fails every call (400 to test refusals, 429, 503…);
    `lostAnswerRate` of calls take effect and then answer 500."""
    await redis.set(FAULTS_KEY, body.model_dump_json())
    return Response(status_code=204)


@router.get("/faults", summary="HubSpot sandbox: current faults", response_model=HubSpotFaults)
async def get_faults(redis: RedisClient) -> HubSpotFaults:
    """The fault switches in force (all off by default)."""
    return await _faults(redis)


@router.delete(
    "/faults", status_code=204, response_class=Response, summary="HubSpot sandbox: clear faults"
)
async def clear_faults(redis: RedisClient) -> Response:
    """Back to normal service."""
    await redis.delete(FAULTS_KEY)
    return Response(status_code=204)


def _record(row: SandboxHubSpotObject) -> CrmRecord:
    return CrmRecord(
        id=str(row.id),
        properties=row.properties,
        associations=row.associations,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/contacts", summary="HubSpot sandbox: contacts held", response_model=list[CrmRecord])
async def contacts(
    session: DbSession,
    email: Annotated[str | None, Query(max_length=320)] = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CrmRecord]:
    """Contacts the sandbox holds, newest first; `email` or `userId` (our customer id)
    pick one person's."""
    where = {"email": email.strip().lower()} if email else {}
    if user_id:
        where["shopweave_user_id"] = user_id
    rows = await HubSpotSandbox(session).records("contacts", where=where, limit=limit)
    return [_record(r) for r in rows]


@router.get("/deals", summary="HubSpot sandbox: deals held", response_model=list[CrmRecord])
async def deals(
    session: DbSession,
    order_id: Annotated[str | None, Query(alias="orderId", max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CrmRecord]:
    """Deals the sandbox holds, newest first; `orderId` picks one order's."""
    where = {"shopweave_order_id": order_id} if order_id else {}
    rows = await HubSpotSandbox(session).records("deals", where=where, limit=limit)
    return [_record(r) for r in rows]


@router.get("", summary="HubSpot sandbox: what it holds", response_class=HTMLResponse)
async def page(session: DbSession) -> HTMLResponse:
    """A page listing the newest deals and contacts, with their properties."""
    sandbox = HubSpotSandbox(session)
    sections = []
    for title, kind, columns in (
        (
            "Deals",
            "deals",
            ("shopweave_order_id", "dealname", "amount", "deal_currency_code", "dealstage"),
        ),
        ("Contacts", "contacts", ("email", "firstname", "lastname", "shopweave_user_id")),
    ):
        rows = await sandbox.records(kind, where={}, limit=200)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ("id", *columns, "associations"))
        body = "".join(
            "<tr>"
            + f"<td>{r.id}</td>"
            + "".join(f"<td>{html.escape(str(r.properties.get(c, '')))}</td>" for c in columns)
            + f"<td>{html.escape(json.dumps(r.associations))}</td></tr>"
            for r in rows
        )
        sections.append(
            f"<h2>{title} ({len(rows)})</h2><table border=1 cellpadding=4>"
            f"<tr>{head}</tr>{body}</table>"
        )
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Shopweave HubSpot sandbox</title>"
        "<body style='font-family:system-ui;max-width:1100px;margin:2em auto'>"
        f"<h1>HubSpot sandbox</h1><p>Newest first.</p>{''.join(sections)}"
    )
