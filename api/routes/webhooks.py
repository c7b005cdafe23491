"""Outgoing webhook endpoints (staff): register, list, change, delete, rotate the secret;
each endpoint's deliveries with their attempts, and a failed delivery's retry."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response, status

from api.deps import DbSession, State, after_commit
from api.problems import problem_responses
from api.security import StaffUser
from models.base import Page
from models.webhook_deliveries import WebhookDeliveryPublic, WebhookRetriedFailed, WebhookStatus
from models.webhooks import (
    SECRET_EXAMPLE,
    URL_EXAMPLE,
    WebhookEndpointCreate,
    WebhookEndpointPublic,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
    WebhookSecretRotation,
)
from services.webhooks.deliveries import (
    WebhookDeliveryAdmin,
    WebhookDeliveryNotFailed,
    WebhookDeliveryNotFound,
    WebhookEndpointDisabled,
)
from services.webhooks.destinations import DestinationPolicy
from services.webhooks.endpoints import (
    InvalidWebhookUrl,
    UnknownEventType,
    WebhookEndpointNotFound,
    WebhookEndpointService,
    WebhookUrlNotAllowed,
)
from temporal.clients.webhooks import WebhookWorkflows

router = APIRouter(prefix="/admin/webhooks", tags=["webhooks"])

ENDPOINT_ID = "whk_01JEX5A1B2C3D4E5F6G7H8J9K0"
EndpointId = Annotated[str, Path(max_length=64, examples=[ENDPOINT_ID])]
ENDPOINT_EXAMPLE = {
    "id": ENDPOINT_ID,
    "url": URL_EXAMPLE,
    "eventTypes": ["order.created", "order.cancelled"],
    "description": "ERP order sync",
    "enabled": True,
    "disabledAt": None,
    "disabledReason": None,
    "consecutiveFailures": 0,
    "failingSince": None,
    "previousSecretExpiresAt": None,
    "createdAt": "2026-12-06T14:30:00Z",
    "updatedAt": "2026-12-06T14:30:00Z",
}
WITH_SECRET_EXAMPLE = ENDPOINT_EXAMPLE | {"secret": SECRET_EXAMPLE}


def _json(example: object) -> dict[int | str, dict[str, object]]:
    return {200: {"content": {"application/json": {"example": example}}}}


@router.post(
    "",
    summary="Register a webhook endpoint (staff)",
    response_model=WebhookEndpointWithSecret,
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"content": {"application/json": {"example": WITH_SECRET_EXAMPLE}}},
        **problem_responses(InvalidWebhookUrl, WebhookUrlNotAllowed, UnknownEventType),
    },
)
async def create_endpoint(
    body: Annotated[
        WebhookEndpointCreate,
        Body(
            openapi_examples={
                "some": {
                    "summary": "Some event types",
                    "value": {
                        "url": URL_EXAMPLE,
                        "eventTypes": ["order.created", "order.cancelled"],
                        "description": "ERP order sync",
                    },
                },
                "all": {
                    "summary": "Every event type",
                    "value": {"url": "http://localhost:9000/hooks", "eventTypes": ["*"]},
                },
            }
        ),
    ],
    caller: StaffUser,
    session: DbSession,
    state: State,
) -> WebhookEndpointWithSecret:
    """An endpoint that wants `eventTypes` (`["*"]`: all of them) at `url` (https, or
    outside production http to localhost / 127.0.0.1). Unless
    `WEBHOOK_ALLOW_PRIVATE_ADDRESSES` (default: outside production only), the url's host
    must resolve to public addresses only: a private, loopback, link-local, multicast or
    reserved one answers 422 `webhook_url_not_allowed`. The answer carries its signing
    `secret` (`whsec_…`, Standard Webhooks): it is shown only here and by
    `rotate-secret`, keep it."""
    return await WebhookEndpointService(session, DestinationPolicy.of(state.settings)).create(body)


@router.get(
    "",
    summary="Webhook endpoints (staff)",
    response_model=Page[WebhookEndpointPublic],
    responses={
        **_json({"items": [ENDPOINT_EXAMPLE], "total": 1, "page": 1, "limit": 20}),
        **problem_responses(),
    },
)
async def list_endpoints(
    caller: StaffUser,
    session: DbSession,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[WebhookEndpointPublic]:
    """Every endpoint, newest first, without secrets. Paginated like every list."""
    return await WebhookEndpointService(session).page(page=page, limit=limit)


@router.get(
    "/{endpoint_id}",
    summary="One webhook endpoint (staff)",
    response_model=WebhookEndpointPublic,
    responses={**_json(ENDPOINT_EXAMPLE), **problem_responses(WebhookEndpointNotFound)},
)
async def get_endpoint(
    endpoint_id: EndpointId, caller: StaffUser, session: DbSession
) -> WebhookEndpointPublic:
    """The endpoint, without its secret."""
    return await WebhookEndpointService(session).get(endpoint_id)


@router.patch(
    "/{endpoint_id}",
    summary="Change a webhook endpoint (staff)",
    response_model=WebhookEndpointPublic,
    responses={
        **_json(
            ENDPOINT_EXAMPLE
            | {
                "enabled": False,
                "disabledAt": "2026-12-06T15:00:00Z",
                "disabledReason": "disabled by staff",
            }
        ),
        **problem_responses(
            WebhookEndpointNotFound, InvalidWebhookUrl, WebhookUrlNotAllowed, UnknownEventType
        ),
    },
)
async def update_endpoint(
    endpoint_id: EndpointId,
    body: Annotated[
        WebhookEndpointUpdate,
        Body(
            openapi_examples={
                "disable": {"summary": "Pause it", "value": {"enabled": False}},
                "enable": {
                    "summary": "Re-enable it (its failure count starts again)",
                    "value": {"enabled": True},
                },
                "types": {"summary": "Change its event types", "value": {"eventTypes": ["*"]}},
            }
        ),
    ],
    caller: StaffUser,
    session: DbSession,
    state: State,
) -> WebhookEndpointPublic:
    """Change the fields sent (`url`, `eventTypes`, `description`, `enabled`), checked as
    on create; the others stay. `enabled: false` records `disabledAt` and
    `disabledReason` ("disabled by staff"); `enabled: true` on a disabled endpoint clears
    them and resets `consecutiveFailures` (also for one disabled after too many failed
    deliveries); on an enabled endpoint it changes nothing, its run of failures kept."""
    return await WebhookEndpointService(session, DestinationPolicy.of(state.settings)).update(
        endpoint_id, body
    )


@router.delete(
    "/{endpoint_id}",
    summary="Delete a webhook endpoint (staff)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(WebhookEndpointNotFound),
)
async def delete_endpoint(
    endpoint_id: EndpointId, caller: StaffUser, session: DbSession
) -> Response:
    """The endpoint is gone."""
    await WebhookEndpointService(session).delete(endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Rotate a webhook endpoint's signing secret (staff)",
    response_model=WebhookEndpointWithSecret,
    responses={
        **_json(WITH_SECRET_EXAMPLE | {"previousSecretExpiresAt": "2026-12-07T14:30:00Z"}),
        **problem_responses(WebhookEndpointNotFound),
    },
)
async def rotate_secret(
    endpoint_id: EndpointId,
    caller: StaffUser,
    session: DbSession,
    body: Annotated[
        WebhookSecretRotation | None,
        Body(
            openapi_examples={
                "default": {"summary": "The old secret signs for 24 h more", "value": {}},
                "hour": {
                    "summary": "The old secret signs for an hour more",
                    "value": {"expiresInSeconds": 3600},
                },
                "now": {
                    "summary": "The old secret stops at once",
                    "value": {"expiresInSeconds": 0},
                },
            }
        ),
    ] = None,
) -> WebhookEndpointWithSecret:
    """A new signing `secret` (shown only in this answer). The old one stays valid for
    `expiresInSeconds` (default 86400, 24 h; `0`: it stops at once; at most 7 days):
    until `previousSecretExpiresAt` every delivery carries both signatures in
    `webhook-signature` (`v1,<new> v1,<old>`), so receivers can switch secrets without
    rejecting a delivery. Rotating again drops an older secret at once."""
    return await WebhookEndpointService(session).rotate_secret(
        endpoint_id, body or WebhookSecretRotation()
    )


DELIVERY_EXAMPLE = {
    "id": "msg_01JEX5C9D8E7F6G5H4J3K2M1N0",
    "endpointId": ENDPOINT_ID,
    "eventId": "evt_01JEX5C9A1B2C3D4E5F6G7H8J9",
    "eventType": "order.created",
    "status": "failed",
    "generation": 0,
    "attempts": 1,
    "lastStatusCode": 400,
    "lastError": "HTTP 400: unknown order",
    "createdAt": "2026-12-06T14:31:00Z",
    "finishedAt": "2026-12-06T14:31:01Z",
    "payload": {
        "type": "order.created",
        "timestamp": "2026-12-06T14:31:00+00:00",
        "data": {"orderId": "ord_01JEX5C9…", "total": 2999, "currency": "USD"},
    },
    "attemptLog": [
        {
            "id": "wha_01JEX5CA00000000000000000",
            "succeeded": False,
            "statusCode": 400,
            "error": "HTTP 400: unknown order",
            "durationMs": 42,
            "createdAt": "2026-12-06T14:31:01Z",
        }
    ],
}
# An event raised while the endpoint was disabled: recorded, not attempted.
SKIPPED_EXAMPLE = DELIVERY_EXAMPLE | {
    "id": "msg_01JEX7Q2R3S4T5V6W7X8Y9Z0A1",
    "eventId": "evt_01JEX7Q2A1B2C3D4E5F6G7H8J9",
    "status": "skipped",
    "attempts": 0,
    "lastStatusCode": None,
    "lastError": "endpoint_disabled: the endpoint was disabled when the event came",
    "createdAt": "2026-12-06T15:02:00Z",
    "finishedAt": "2026-12-06T15:02:00Z",
    "attemptLog": [],
}


@router.get(
    "/{endpoint_id}/deliveries",
    summary="A webhook endpoint's deliveries (staff)",
    response_model=Page[WebhookDeliveryPublic],
    responses={
        **_json({"items": [SKIPPED_EXAMPLE, DELIVERY_EXAMPLE], "total": 2, "page": 1, "limit": 20}),
        **problem_responses(WebhookEndpointNotFound),
    },
)
async def list_deliveries(
    endpoint_id: EndpointId,
    caller: StaffUser,
    session: DbSession,
    delivery_status: Annotated[
        WebhookStatus | None,
        Query(
            alias="status",
            description="`failed` lists the failed ones, `skipped` the events raised while "
            "the endpoint was disabled",
            examples=["skipped"],
        ),
    ] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[WebhookDeliveryPublic]:
    """One item per event sent (or being sent) to the endpoint, newest first: `status`
    (`pending`, `delivered`, `failed`, or `skipped`: raised while the endpoint was
    disabled, not attempted, `lastError` `endpoint_disabled: …`; `retry-failed` sends it
    once the endpoint is enabled again), `attempts`, `lastStatusCode`, `lastError`, the
    `payload` sent, and `attemptLog` (each attempt's status code, error and duration). The
    item's `id` is the `webhook-id` header. Paginated like every list. Finished ones are
    pruned after their retention: delivered `WEBHOOK_DELIVERY_RETENTION_DAYS` (30) after
    delivery, failed `WEBHOOK_FAILED_DELIVERY_RETENTION_DAYS` (90) after failing, skipped
    `OUTBOX_RETENTION_DAYS` (7) after recording; pending ones never."""
    return await WebhookDeliveryAdmin(session).page(
        endpoint_id, status=delivery_status, page=page, limit=limit
    )


@router.post(
    "/deliveries/{delivery_id}/retry",
    summary="Send a failed or skipped webhook delivery again (staff)",
    response_model=WebhookDeliveryPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        202: {
            "content": {
                "application/json": {
                    "example": DELIVERY_EXAMPLE | {"status": "pending", "generation": 1}
                }
            }
        },
        **problem_responses(
            WebhookDeliveryNotFound, WebhookDeliveryNotFailed, WebhookEndpointDisabled
        ),
    },
)
async def retry_delivery(
    delivery_id: Annotated[str, Path(max_length=64, examples=["msg_01JEX5C9D8E7F6G5H4J3K2M1N0"])],
    caller: StaffUser,
    session: DbSession,
    state: State,
) -> WebhookDeliveryPublic:
    """The failed delivery goes back to `pending` (its `generation` bumped) and is sent
    again at once, with the same `webhook-id` and its own retries. Only a `failed` or
    `skipped` one: another answers 409 `webhook_delivery_not_failed`; while its endpoint
    is disabled, 409
    `webhook_endpoint_disabled` (re-enable it first: a disabled endpoint gets nothing)."""
    delivery, start = await WebhookDeliveryAdmin(session).retry(
        delivery_id, WebhookWorkflows(state.temporal, state.settings)
    )
    after_commit(session, partial(state.workflows.starts.start, start))
    return delivery


@router.post(
    "/{endpoint_id}/retry-failed",
    summary="Send an endpoint's failed and skipped webhook deliveries (staff)",
    response_model=WebhookRetriedFailed,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        202: {"content": {"application/json": {"example": {"retried": 12, "more": False}}}},
        **problem_responses(WebhookEndpointNotFound, WebhookEndpointDisabled),
    },
)
async def retry_failed_deliveries(
    endpoint_id: EndpointId, caller: StaffUser, session: DbSession, state: State
) -> WebhookRetriedFailed:
    """Every `failed` delivery of the endpoint, and every `skipped` one (an event raised
    while it was disabled), the oldest 100 (`more: true` when some are left: call again),
    goes back to `pending` and is sent at once, each as `deliveries/{id}/retry` would:
    once, with its own `webhook-id` (receivers deduplicate on it), `generation` bumped.
    For an endpoint back from an outage, once re-enabled: 409 `webhook_endpoint_disabled`
    while it is disabled."""
    retried, starts = await WebhookDeliveryAdmin(session).retry_failed(
        endpoint_id, WebhookWorkflows(state.temporal, state.settings)
    )
    for start in starts:
        after_commit(session, partial(state.workflows.starts.start, start))
    return retried
