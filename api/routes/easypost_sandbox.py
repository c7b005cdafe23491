"""The EasyPost sandbox over HTTP: ``/_sandbox/easypost/v2/…`` in EasyPost's wire format.

The API key comes as EasyPost takes it: HTTP Basic with the key as the user name
(``curl -u KEY:``) or, as the SDKs send it, ``Authorization: Bearer KEY``; any non-empty
key will do. Switches (JSON, outside ``/v2``): drive a tracker by hand
(``POST …/trackers/{id}/advance``), auto-advance every tracker on a timer
(``PUT …/auto-advance``), and faults (``PUT …/faults``). Views: ``…/shipments``,
``…/trackers``, a tracking page per tracker and a printable label per shipment.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import DbSession, RedisClient, State, after_commit
from api.problems import problem_responses
from api.routes.sandbox_faults import ProviderFaults
from api.state import AppState
from core.errors import Conflict, NotFound
from core.settings import SANDBOX_EASYPOST_WEBHOOK_SECRET
from integrations.sandbox.credentials import api_key
from integrations.sandbox.easypost import EasyPostSandbox, TrackerCannotMove, Webhook
from integrations.sandbox.easypost_wire import EasyPostError
from integrations.sandbox.webhooks import Delivery, deliver_later
from integrations.shipping.provider import CarrierStatus
from models.base import CamelModel

router = APIRouter(prefix="/_sandbox/easypost", tags=["sandbox"])
FAULTS_KEY = "sandbox:easypost:faults"
AUTO_ADVANCE_KEY = "sandbox:easypost:auto_advance"
_UNAUTHENTICATED = EasyPostError(
    401,
    "APIKEY.REQUIRED",
    "No API key provided. Provide your key with HTTP Basic auth (curl -u KEY:) or a Bearer token.",
)


class EasyPostFaults(ProviderFaults):
    duplicate_webhook_rate: float = Field(
        default=0, ge=0, le=1, description="Share of webhooks sent twice (same event id)"
    )


class AutoAdvance(CamelModel):
    interval_seconds: float = Field(
        gt=0,
        le=86_400,
        description="Every tracker not yet delivered (or returned, failed, voided) moves one "
        "step on its normal path each time this long has passed since it last moved",
    )


class TrackerAdvance(CamelModel):
    status: CarrierStatus | None = Field(
        default=None, description="Where the tracker goes; unset: the next normal status"
    )
    message: str | None = Field(default=None, max_length=500, description="The carrier's words")
    location: str | None = Field(
        default=None, max_length=200, description='"City, ST, ZIP, CC" (leading parts will do)'
    )
    occurred_at: AwareDatetime | None = Field(
        default=None,
        description="When the carrier saw it (default now): not before the tracker's last "
        "entry, not in the future",
    )
    label_at: AwareDatetime | None = Field(
        default=None,
        description="Re-dates the label's entry of a tracker that has not moved yet (its "
        "first update), for history seeded in the past",
    )


def _error(exc: EasyPostError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def current_faults(redis: Redis) -> EasyPostFaults:
    return EasyPostFaults.model_validate_json(await redis.get(FAULTS_KEY) or "{}")


def sandbox_for(state: AppState, session: AsyncSession) -> EasyPostSandbox:
    settings = state.settings
    return EasyPostSandbox(
        session,
        base_url=f"{settings.api_base_url}/_sandbox/easypost",
        webhook_url=settings.resolved_easypost_webhook_url,
        webhook_secret=settings.resolved_easypost_webhook_secret or SANDBOX_EASYPOST_WEBHOOK_SECRET,
    )


def send_webhooks(state: AppState, webhooks: list[Webhook], faults: EasyPostFaults) -> None:
    """Deliver ``webhooks`` in the background (some twice, under the duplicate fault)."""
    deliveries: list[Delivery] = []
    for hook in webhooks:
        headers = {"Content-Type": "application/json", "X-Hmac-Signature": hook.signature}
        copies = 2 if random.random() < faults.duplicate_webhook_rate else 1
        deliveries += [(hook.payload, headers)] * copies
    if deliveries:
        url = state.settings.resolved_easypost_webhook_url
        deliver_later(state.http, url, deliveries, provider="easypost")


def _send_after_commit(
    state: AppState, session: AsyncSession, sandbox: EasyPostSandbox, faults: EasyPostFaults
) -> None:
    webhooks = list(sandbox.webhooks)
    if not webhooks:
        return

    async def send() -> None:
        send_webhooks(state, webhooks, faults)

    after_commit(session, send)


Call = Callable[[EasyPostSandbox, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _call(
    request: Request,
    state: AppState,
    session: AsyncSession,
    redis: Redis,
    handler: Call,
    status: int = 200,
) -> Response:
    """Authentication, faults and EasyPost's error shape around one sandbox operation."""
    if not api_key(request.headers.get("authorization", "")):
        return _error(_UNAUTHENTICATED)
    faults = await current_faults(redis)
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if (faults.status and not faults.failure_rate) or (
        faults.failure_rate and random.random() < faults.failure_rate
    ):
        code = faults.status or 500
        return _error(EasyPostError(code, "SANDBOX.FAULT", f"Sandbox fault: injected {code}."))
    body: dict[str, Any] = {}
    raw = await request.body()
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            return _error(EasyPostError(400, "BAD_REQUEST", f"The body is not JSON: {exc}"))
        if not isinstance(parsed, dict):
            return _error(EasyPostError(400, "BAD_REQUEST", "The body must be a JSON object."))
        body = parsed
    sandbox = sandbox_for(state, session)
    try:
        answer = await handler(sandbox, body)
    except EasyPostError as exc:
        await session.rollback()  # nothing of a refused request stays
        return _error(exc)
    except (AttributeError, TypeError, ValueError) as exc:
        await session.rollback()
        return _error(EasyPostError(422, "PARAMETER.INVALID", f"Invalid parameters: {exc}"))
    _send_after_commit(state, session, sandbox, faults)
    if faults.lost_answer_rate and random.random() < faults.lost_answer_rate:
        # The change stands (the request still commits); only the answer is lost.
        return _error(EasyPostError(500, "INTERNAL_SERVER_ERROR", "Sandbox fault: answer lost."))
    return JSONResponse(answer, status_code=status)


# --- EasyPost's API ----------------------------------------------------------------------


@router.post("/v2/shipments", summary="EasyPost sandbox: create a shipment")
async def create_shipment(
    request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """`{"shipment": {to_address, from_address, parcel, reference, is_return}}`: 201 with
    three rates (USPS, UPS, FedEx). `to_address.zip` `00000` fails address verification
    (422 `ADDRESS.VERIFY.FAILURE`); `99999` gets no rate."""
    return await _call(
        request, state, session, redis, lambda s, b: s.create_shipment(b), status=201
    )


@router.get("/v2/shipments/{shipment_id}", summary="EasyPost sandbox: retrieve a shipment")
async def retrieve_shipment(
    shipment_id: str, request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """The shipment with its rates, and once bought its label and tracker."""
    return await _call(
        request, state, session, redis, lambda s, b: s.retrieve_shipment(shipment_id)
    )


@router.post("/v2/shipments/{shipment_id}/buy", summary="EasyPost sandbox: buy a rate")
async def buy(
    shipment_id: str, request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """`{"rate": {"id": "rate_…"}}`: the label and a `pre_transit` tracker. A second buy
    answers 422 `SHIPMENT.POSTAGE.EXISTS`."""
    return await _call(request, state, session, redis, lambda s, b: s.buy(shipment_id, b))


@router.post("/v2/shipments/{shipment_id}/refund", summary="EasyPost sandbox: refund a label")
async def refund(
    shipment_id: str, request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """`refund_status` `submitted` (the tracker is cancelled), or `rejected` once the
    carrier has the parcel; a second refund answers 422 `SHIPMENT.REFUND.ALREADY_SUBMITTED`."""
    return await _call(request, state, session, redis, lambda s, b: s.refund(shipment_id))


@router.get("/v2/trackers/{tracker_id}", summary="EasyPost sandbox: retrieve a tracker")
async def retrieve_tracker(
    tracker_id: str, request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """The tracker with its full `tracking_details`, oldest first."""
    return await _call(request, state, session, redis, lambda s, b: s.retrieve_tracker(tracker_id))


# --- switches ------------------------------------------------------------------------------


@router.post(
    "/trackers/{tracker_id}/advance",
    summary="EasyPost sandbox: move a tracker",
    responses=problem_responses((NotFound, "tracker_not_found"), (Conflict, "tracker_cannot_move")),
)
async def advance_tracker(
    tracker_id: str,
    state: State,
    session: DbSession,
    redis: RedisClient,
    body: TrackerAdvance | None = None,
) -> dict[str, Any]:
    """Append a tracking detail and send the signed `tracker.updated` webhook. Without a
    body the tracker takes its next normal status (`pre_transit → in_transit →
    out_for_delivery → delivered`); with `status` it goes there (`failure`,
    `return_to_sender`, …), with the carrier's `message` and `location` if given, at
    `occurredAt` if given (past history: `labelAt` dates the label's entry of a tracker
    still at its first step). A voided label's tracker, a finished one without `status`,
    or an update dated before the tracker's last one or in the future cannot move (409)."""
    body = body or TrackerAdvance()
    sandbox = sandbox_for(state, session)
    try:
        tracker = await sandbox.advance(
            tracker_id,
            body.status.value if body.status else None,
            body.message,
            body.location,
            at=body.occurred_at,
            label_at=body.label_at,
        )
    except EasyPostError:
        raise NotFound(f"No tracker {tracker_id}", code="tracker_not_found") from None
    except TrackerCannotMove as exc:
        raise Conflict(str(exc), code="tracker_cannot_move") from None
    _send_after_commit(state, session, sandbox, await current_faults(redis))
    return tracker


@router.put(
    "/auto-advance",
    status_code=204,
    response_class=Response,
    summary="EasyPost sandbox: auto-advance trackers",
)
async def set_auto_advance(body: AutoAdvance, state: State, redis: RedisClient) -> Response:
    """Every `intervalSeconds`, each moving tracker takes its next normal status (and its
    webhook goes out), moved by the API process this switch reached (send it to several:
    each tracker still moves once a step)."""
    from api.easypost_auto_advance import start_auto_advance  # it imports this module

    await redis.set(AUTO_ADVANCE_KEY, body.model_dump_json())
    start_auto_advance(state)
    return Response(status_code=204)


@router.get(
    "/auto-advance",
    summary="EasyPost sandbox: auto-advance setting",
    response_model=AutoAdvance | None,
)
async def get_auto_advance(redis: RedisClient) -> AutoAdvance | None:
    """The interval in force, or `null` when trackers move by hand only (the default)."""
    raw = await redis.get(AUTO_ADVANCE_KEY)
    return AutoAdvance.model_validate_json(raw) if raw else None


@router.delete(
    "/auto-advance",
    status_code=204,
    response_class=Response,
    summary="EasyPost sandbox: stop auto-advance",
)
async def stop_auto_advance(redis: RedisClient) -> Response:
    """Trackers move by hand only."""
    await redis.delete(AUTO_ADVANCE_KEY)
    return Response(status_code=204)


@router.put(
    "/faults", status_code=204, response_class=Response, summary="EasyPost sandbox: set faults"
)
async def set_faults(body: EasyPostFaults, redis: RedisClient) -> Response:
    """Make the sandbox's `/v2` API flaky: `failureRate` of calls answer `status` (default
    500), after `latencyMs`; `status` alone fails every call (422 to test refusals, 429,
    503…); `lostAnswerRate` of calls take effect and then answer 500;
    `duplicateWebhookRate` of webhooks are sent twice."""
    await redis.set(FAULTS_KEY, body.model_dump_json())
    return Response(status_code=204)


@router.get("/faults", summary="EasyPost sandbox: current faults", response_model=EasyPostFaults)
async def get_faults(redis: RedisClient) -> EasyPostFaults:
    """The fault switches in force (all off by default)."""
    return await current_faults(redis)


@router.delete(
    "/faults", status_code=204, response_class=Response, summary="EasyPost sandbox: clear faults"
)
async def clear_faults(redis: RedisClient) -> Response:
    """Back to normal service."""
    await redis.delete(FAULTS_KEY)
    return Response(status_code=204)


# --- what the sandbox holds ------------------------------------------------------------------


@router.get("/shipments", summary="EasyPost sandbox: shipments held")
async def shipments(
    state: State,
    session: DbSession,
    reference: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Shipments as EasyPost shows them, newest first; `reference` (our shipment or
    return id) picks one's."""
    return await sandbox_for(state, session).objects("shipment", reference=reference, limit=limit)


@router.get("/trackers", summary="EasyPost sandbox: trackers held")
async def trackers(
    state: State,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Trackers as EasyPost shows them, newest first."""
    return await sandbox_for(state, session).objects("tracker", limit=limit)
