"""Fulfilment orders (staff, the warehouse): the queue, one order, shipments, holds and
cancels. Every change goes through the order's ``FulfillmentWorkflow`` (its Updates), so
the workflow is the single writer; reads come from the tables."""

from __future__ import annotations

from functools import partial
from typing import Annotated, NoReturn

from fastapi import APIRouter, Query, Response, status

from api.deps import DbSession, Limit, Pagination, State, after_commit
from api.problems import TEMPORAL_UNAVAILABLE, problem_responses
from api.security import StaffUser
from core.errors import Conflict, ShopError, ValidationFailed
from models.base import Page
from models.fulfillment import FulfillmentStatus
from models.fulfillment_api import (
    FulfillmentCancel,
    FulfillmentHold,
    FulfillmentPublic,
    ShipmentCreate,
    ShipmentSummary,
)
from models.order_api import ShippingAddressIn
from services.addresses import InvalidAddress
from services.fulfillment.addresses import ShipmentAddresses, ShipmentNotAwaitingAddress
from services.fulfillment.reading import FulfillmentReader
from services.fulfillment.repository import FulfillmentNotFound, ShipmentNotFound
from services.fulfillment.service import (
    FulfillmentClosed,
    FulfillmentHasLabels,
    FulfillmentNotOnHold,
    FulfillmentOnHold,
    FulfillmentUnavailable,
    QuantityExceedsUnassigned,
    UnknownOrderLine,
)
from temporal.clients.connection import WorkflowNotFound, WorkflowRefused
from workflows.types.fulfillment_orders import LineQuantity, ShipmentRequest

router = APIRouter(tags=["fulfilment"])

# The workflow's refusals (validator or activity), by code, as our errors.
_REFUSALS: dict[str, type[ShopError]] = {
    cls.code: cls
    for cls in (
        FulfillmentOnHold,
        FulfillmentClosed,
        FulfillmentHasLabels,
        FulfillmentNotOnHold,
        UnknownOrderLine,
        QuantityExceedsUnassigned,
        FulfillmentNotFound,
        FulfillmentUnavailable,
    )
}
_REFUSALS["validation_error"] = ValidationFailed

SHIPMENT_EXAMPLE = {
    "lines": [{"orderLineId": "oline_01JD3Q5Z8K2M4N6P8R0T2V4X6Z", "quantity": 1}],
    "weightOz": 24.0,
}


ADDRESS_EXAMPLE = {
    "name": "Ada Lovelace",
    "street": "12 Beacon St",
    "city": "Boston",
    "state": "MA",
    "zip": "02108",
    "country": "US",
}


def refused(exc: WorkflowRefused) -> NoReturn:
    error = _REFUSALS.get(exc.code)
    if error is None:
        raise Conflict(exc.detail, code=exc.code) from exc
    raise error(exc.detail) from exc


async def _order_of(session: DbSession, fulfillment_id: str) -> str:
    reader = FulfillmentReader(session)
    return (await reader.repo.require(fulfillment_id)).order_id


async def _after_change(session: DbSession, fulfillment_id: str) -> FulfillmentPublic:
    """The fulfilment as the workflow's activity left it (not as this session saw it)."""
    session.expire_all()
    return await FulfillmentReader(session).one(fulfillment_id)


@router.get(
    "/admin/fulfillments",
    summary="The warehouse's fulfilment orders (staff)",
    response_model=Page[FulfillmentPublic],
    responses=problem_responses(),
)
async def list_fulfillments(
    caller: StaffUser,
    session: DbSession,
    page: Pagination = 1,
    limit: Limit = 20,
    status: FulfillmentStatus | None = None,
    order_id: Annotated[str | None, Query(alias="orderId", max_length=40)] = None,
) -> Page[FulfillmentPublic]:
    """Fulfilment orders most urgent first (highest `priority`), then oldest first, each
    with its lines (quantity, shipped, delivered, unassigned), shipping address and
    parcels. `status` filters (`open`, `in_progress`, `on_hold`, `partially_shipped`,
    `shipped`, `delivered`, `cancelled`); another value answers 422. `orderId` finds an
    order's fulfilment. Staff only."""
    items, total = await FulfillmentReader(session).queue(
        status, offset=(page - 1) * limit, limit=limit, order_id=order_id
    )
    return Page(items=items, total=total, page=page, limit=limit)


@router.get(
    "/admin/fulfillments/{fulfillment_id}",
    summary="Get a fulfilment order (staff)",
    response_model=FulfillmentPublic,
    responses=problem_responses(FulfillmentNotFound),
)
async def get_fulfillment(
    fulfillment_id: str, caller: StaffUser, session: DbSession
) -> FulfillmentPublic:
    """Its lines with what is shipped, delivered and still unassigned, the shipping
    address, the hold reason if on hold, and every parcel with its label and tracking
    code. 404 `fulfillment_not_found`."""
    return await FulfillmentReader(session).one(fulfillment_id)


@router.post(
    "/admin/fulfillments/{fulfillment_id}/shipments",
    status_code=status.HTTP_201_CREATED,
    summary="Create a shipment (a parcel) from a fulfilment order (staff)",
    response_model=ShipmentSummary,
    responses=problem_responses(
        FulfillmentNotFound,
        FulfillmentOnHold,
        FulfillmentClosed,
        UnknownOrderLine,
        QuantityExceedsUnassigned,
        FulfillmentUnavailable,
        *TEMPORAL_UNAVAILABLE,
    ),
    openapi_extra={"requestBody": {"content": {"application/json": {"example": SHIPMENT_EXAMPLE}}}},
)
async def create_shipment(
    fulfillment_id: str,
    body: ShipmentCreate,
    caller: StaffUser,
    state: State,
    session: DbSession,
) -> ShipmentSummary:
    """201 with the new parcel in status `pending`: `lines` say which order lines and how
    many units go in it (several parcels split an order). Its `ShipmentWorkflow` then
    buys the label; follow it with `GET /api/admin/fulfillments/{id}`.

    422 `unknown_order_line` for a line not in this fulfilment order, 422
    `quantity_exceeds_unassigned` for more units than are left to ship; 409
    `fulfillment_on_hold` while on hold, 409 `fulfillment_closed` once cancelled or
    delivered."""
    order_id = await _order_of(session, fulfillment_id)
    request = ShipmentRequest(
        lines=[
            LineQuantity(order_line_id=ln.order_line_id, quantity=ln.quantity) for ln in body.lines
        ],
        weight_oz=body.weight_oz,
    )
    try:
        created = await state.workflows.fulfillments.create_shipment(order_id, request)
    except WorkflowRefused as exc:
        refused(exc)
    except WorkflowNotFound as exc:
        raise FulfillmentClosed("the fulfilment order is finished") from exc
    session.expire_all()
    return await FulfillmentReader(session).summary(created.shipment_id)


@router.post(
    "/admin/fulfillments/{fulfillment_id}/hold",
    summary="Put a fulfilment order on hold (staff)",
    response_model=FulfillmentPublic,
    responses=problem_responses(
        FulfillmentNotFound, FulfillmentClosed, FulfillmentUnavailable, *TEMPORAL_UNAVAILABLE
    ),
)
async def hold_fulfillment(
    fulfillment_id: str,
    body: FulfillmentHold,
    caller: StaffUser,
    state: State,
    session: DbSession,
) -> FulfillmentPublic:
    """Stop new parcels until released; the status becomes `on_hold` with `holdReason`,
    and the warehouse is alerted (`fulfillment.on_hold`). Holding a held one keeps its
    first reason. 409 `fulfillment_closed` once cancelled or delivered."""
    order_id = await _order_of(session, fulfillment_id)
    try:
        await state.workflows.fulfillments.hold(order_id, body.reason)
    except WorkflowRefused as exc:
        refused(exc)
    except WorkflowNotFound as exc:
        raise FulfillmentClosed("the fulfilment order is finished") from exc
    return await _after_change(session, fulfillment_id)


@router.post(
    "/admin/fulfillments/{fulfillment_id}/release",
    summary="Release a fulfilment order from its hold (staff)",
    response_model=FulfillmentPublic,
    responses=problem_responses(
        FulfillmentNotFound,
        FulfillmentNotOnHold,
        FulfillmentClosed,
        FulfillmentUnavailable,
        *TEMPORAL_UNAVAILABLE,
    ),
)
async def release_fulfillment(
    fulfillment_id: str, caller: StaffUser, state: State, session: DbSession
) -> FulfillmentPublic:
    """Lift the hold: the status follows the parcels again (`open`, `in_progress`,
    `partially_shipped`, …). 409 `fulfillment_not_on_hold` if it is not on hold."""
    order_id = await _order_of(session, fulfillment_id)
    try:
        await state.workflows.fulfillments.release(order_id)
    except WorkflowRefused as exc:
        refused(exc)
    except WorkflowNotFound as exc:
        raise FulfillmentClosed("the fulfilment order is finished") from exc
    return await _after_change(session, fulfillment_id)


@router.post(
    "/admin/fulfillments/{fulfillment_id}/cancel",
    summary="Cancel a fulfilment order before any label (staff)",
    response_model=FulfillmentPublic,
    responses={
        202: {
            "description": "Cancellation accepted and still being carried out",
            "model": FulfillmentPublic,
        },
        **problem_responses(
            FulfillmentNotFound,
            FulfillmentHasLabels,
            FulfillmentClosed,
            FulfillmentUnavailable,
            *TEMPORAL_UNAVAILABLE,
        ),
    },
)
async def cancel_fulfillment(
    fulfillment_id: str,
    caller: StaffUser,
    state: State,
    session: DbSession,
    response: Response,
    body: FulfillmentCancel | None = None,
) -> FulfillmentPublic:
    """Cancel while no parcel has a label: pending parcels are cancelled, the sold stock
    goes back, the payment is refunded, the order becomes `cancelled` and the customer
    is emailed. 200 when done (202 if the refund takes longer; it finishes in the
    background). 409 `fulfillment_has_labels` once any parcel has a label; cancelling
    twice is harmless."""
    order_id = await _order_of(session, fulfillment_id)
    try:
        done = await state.workflows.fulfillments.cancel(order_id, body.reason if body else None)
    except WorkflowRefused as exc:
        refused(exc)
    except WorkflowNotFound as exc:
        raise FulfillmentClosed("the fulfilment order is finished") from exc
    if done is None:
        response.status_code = status.HTTP_202_ACCEPTED  # accepted; still undoing
    return await _after_change(session, fulfillment_id)


@router.post(
    "/admin/shipments/{shipment_id}/address",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Correct the address a parcel's label was refused for, and retry it (staff)",
    response_model=ShipmentSummary,
    responses=problem_responses(
        ShipmentNotFound, InvalidAddress, ShipmentNotAwaitingAddress, *TEMPORAL_UNAVAILABLE
    ),
    openapi_extra={"requestBody": {"content": {"application/json": {"example": ADDRESS_EXAMPLE}}}},
)
async def correct_shipment_address(
    shipment_id: str,
    body: ShippingAddressIn,
    caller: StaffUser,
    state: State,
    session: DbSession,
) -> ShipmentSummary:
    """When the carrier refuses a parcel's label (an address it cannot verify or serve),
    the fulfilment goes on hold and the parcel's workflow waits. This stores the
    corrected address (the order's; checkout's rules: a US address names its state) as
    where the order ships, and asks the workflow to buy the label again: 202 with the
    parcel, still `pending` until the label is bought (follow it with `GET
    /api/admin/fulfillments/{id}`; a second refusal waits again). The order's timeline
    records the correction.

    404 `shipment_not_found`; 422 `invalid_address`; 409 `shipment_not_awaiting_address`
    unless the parcel's label was refused and is waiting (already labelled, cancelled,
    or still being booked)."""
    shipment, retry = await ShipmentAddresses(session, state.workflows.shipments).correct(
        shipment_id, body.model_dump()
    )
    # Recorded with the correction: the relay sends it if this process dies first.
    after_commit(session, partial(state.workflows.starts.start, retry))
    return await FulfillmentReader(session).summary(shipment.id)
