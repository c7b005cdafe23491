"""Orders: checkout, history, one order, cancellation; staff search across all orders."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.conditional import ANY_TAG, AwaitedStatuses, KnownEtags, WaitPreference, matches
from api.deps import (
    DbSession,
    IdempotencyKeyHeader,
    Limit,
    Pagination,
    ReadSession,
    State,
    after_commit,
    release_connection,
)
from api.problems import TEMPORAL_UNAVAILABLE, problem_responses
from api.security import CurrentUser, ReadingUser, StaffUser, require_own_user_id
from core.errors import Conflict, Forbidden, ValidationFailed
from integrations.payments.gateway import (
    InvalidPaymentMethod,
    PaymentRejected,
    PaymentUnavailable,
)
from integrations.payments.stripe_units import AmountNotRepresentable
from models.base import IsoDatetime, Page
from models.order_api import OrderCancel, OrderCreate, OrderPublic, OrderSummary, RefundCreate
from models.orders import Order, OrderStatus, TimelineAudience
from models.shipment_views import OrderShipmentDetail
from services import payments
from services.addresses import AddressNotFound, InvalidAddress
from services.checkout import CartNotFound, Checkout
from services.fulfillment.reading import FulfillmentReader
from services.fulfillment.repository import ShipmentNotFound
from services.order_cancellation import (
    OrderBeingHandedOver,
    OrderCancellation,
    OrderNotCancellable,
)
from services.order_checks import CartEmpty
from services.order_repository import OrderFilter, OrderNotFound
from services.order_watch import order_etag
from services.orders import OrderService
from services.payments import NotRefundable

router = APIRouter(tags=["orders"])

PLACE_EXAMPLE = {
    "cartId": "cart_01JD3Q5Z8K2M4N6P8R0T2V4X6Z",
    "shippingAddress": {"street": "123 Main St", "city": "Boston", "state": "MA", "zip": "02101"},
    "paymentMethod": {"type": "card", "token": "pm_card_visa"},
}


def order_service(state: State, session: DbSession) -> OrderService:
    return OrderService(session, state.settings, state.analytics)


def timeline_reader(caller: CurrentUser) -> TimelineAudience:
    """Whose view of the timeline ``caller`` reads: staff see every entry (their own
    orders' too), a customer only the entries written for customers."""
    return TimelineAudience.STAFF if caller.is_staff else TimelineAudience.CUSTOMER


async def visible_order(service: OrderService, order_id: str, caller: CurrentUser) -> Order:
    """The order if the caller owns it or is staff; 404 otherwise (never 403)."""
    order = await service.orders.get(order_id)
    if order is None or (order.user_id != caller.user.id and not caller.is_staff):
        raise OrderNotFound(f"no order {order_id}")
    return order


@router.post(
    "/orders",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Place an order (checkout)",
    response_model=OrderPublic,
    responses=problem_responses(
        CartNotFound,
        (Forbidden, "user_mismatch"),
        (Conflict, "cart_not_active"),
        CartEmpty,
        InvalidAddress,
        AddressNotFound,
        InvalidPaymentMethod,
    ),
    openapi_extra={"requestBody": {"content": {"application/json": {"example": PLACE_EXAMPLE}}}},
)
async def place_order(
    body: OrderCreate, caller: CurrentUser, state: State, session: DbSession, response: Response
) -> OrderPublic:
    """Check out the caller's cart: 202 with the order in status `pending`.

    Only fast checks happen here: a `userId` (the seed's pipeline input names one) must
    be the caller's own (403 `user_mismatch`); the cart must be the caller's (404
    `cart_not_found`) and not empty (422 `cart_empty`); the address must be complete (422
    `invalid_address`, or 404 `address_not_found` for a `shippingAddressId`) and the
    payment method well formed (422). The rest (pricing, stock, payment) is done by
    `OrderWorkflow`; follow it with `GET /api/orders/{id}`. An account deleted before
    the order is written is refused as its token is (401 `account_deleted`); deleted
    after, its order's email is erased with its other orders'.

    Send `expectedTotal`, the total the shopper was shown (the cart's, for this
    address), to be charged exactly that: priced otherwise, the order fails with
    `price_changed` (`expectedTotal` and `total` in its timeline) before anything is
    held or charged, and the cart stays open to check out again.

    Checking the same cart out again returns the same order while it is live. With an
    `Idempotency-Key` header, the same key and body replay the first answer, and the
    same key with another body answers 409 `idempotency_key_reused`.

    The answer's `ETag` is the order's: send it as `If-None-Match` with `Prefer: wait=30`
    to `GET /api/orders/{id}` to hear of the order's next change as it happens.
    """
    require_own_user_id(caller, body.user_id)
    order, start = await Checkout(session, state.settings).place(caller.user, body)
    if start is not None:
        after_commit(session, partial(state.workflows.starts.start, start))
    response.headers["Location"] = f"/api/orders/{order.id}"
    service = order_service(state, session)
    # A new order is rendered from what was just written; an order already placed for
    # this cart is read.
    public = (
        service.placed(order)
        if start is not None
        else await service.public(order, timeline_reader(caller))
    )
    # The tag a client long-polls from (GET with If-None-Match and Prefer: wait).
    response.headers["ETag"] = order_etag(public)
    return public


@router.get(
    "/orders",
    summary="Your order history",
    response_model=Page[OrderSummary],
    responses=problem_responses(),
)
async def list_orders(
    caller: CurrentUser,
    state: State,
    session: DbSession,
    page: Pagination = 1,
    limit: Limit = 20,
    status: OrderStatus | None = None,
) -> Page[OrderSummary]:
    """The caller's orders, newest first, optionally only those in one `status`."""
    items, total = await order_service(state, session).summaries(
        OrderFilter(user_id=caller.user.id, status=status), offset=(page - 1) * limit, limit=limit
    )
    return Page(items=items, total=total, page=page, limit=limit)


@router.get(
    "/orders/{order_id}",
    summary="Get an order (or wait for it to change)",
    response_model=OrderPublic,
    responses={
        200: {
            "headers": {
                "ETag": {"description": "The order's entity tag", "schema": {"type": "string"}}
            }
        },
        304: {"description": "Not modified: the order's ETag is still one `If-None-Match` named"},
        **problem_responses(OrderNotFound),
    },
)
async def get_order(
    order_id: str,
    caller: ReadingUser,
    state: State,
    session: ReadSession,
    response: Response,
    known: KnownEtags,
    wait: WaitPreference,
    statuses: AwaitedStatuses,
) -> OrderPublic | Response:
    """Lines, totals, shipping address, payment summary, status and timeline.

    While 3-D Secure is pending the status is `requires_action` and `nextActionUrl` is
    where the customer authenticates. A failed order carries a `failureCode`
    (`out_of_stock`, `payment_declined`, `payment_action_timeout`, `cart_empty`, …).
    Someone else's order answers 404 (staff see every order).

    Each timeline entry says whom it is for in `audience`: the customer reads only the
    `customer` entries (status changes, parcels, refunds, returns); staff read every
    entry, the `staff` ones too (a compensation that ran, units to count in by hand,
    the payment provider unreachable, fulfilment holds, staff decisions).

    Every answer carries an `ETag`, of the order as the caller sees it: a staff-only
    entry changes staff's ETag, not the customer's (nor wakes the customer's wait). With
    `If-None-Match: <etag>` an unchanged order answers 304 Not Modified. Add
    `Prefer: wait=N` (N seconds, at most 30) to wait for a change instead: the answer is
    the 200 with the new order and ETag as soon as the order changes (its status, a
    timeline entry, its payment or a parcel), or 304 once N seconds pass without a
    change; `Preference-Applied: wait=N` says the wait was honoured.

    `until=confirmed` (statuses, comma-separated) narrows the wait to the statuses the
    client waits for: it answers 200 once the order is in one of them or settled
    (`fulfillment_queued` or later, `failed`, `cancelled`), and not at the changes in
    between. When the wait runs out first, the answer is 304 if the order is still the
    one `If-None-Match` names, else 200 with the order as it is (not yet at a status
    asked for). With `until`, `If-None-Match` may be left out: an order already at an
    asked status answers at once.

    A malformed `Prefer: wait` answers 400 `invalid_preference`, a malformed
    `If-None-Match` 400 `invalid_if_none_match`, an unknown status in `until` 422
    `invalid_until`. For every change as it happens, see `GET /api/orders/{id}/events`.
    """
    # Reads only, in autocommit: the caller, the order and (not waiting) what it shows are
    # a round trip each, with no transaction around them (issue #15: two fewer per GET).
    service = order_service(state, session)
    order = await visible_order(service, order_id, caller)
    waits = known is not None or statuses is not None
    if wait is not None and waits and ANY_TAG not in (known or ()):
        # Waiting holds no database connection; the watch reads in sessions of its own.
        await release_connection(session)
        response.headers["Preference-Applied"] = f"wait={wait:g}"
        now = await state.order_watch.wait_for_change(
            order.id, timeline_reader(caller), known or (), wait, statuses
        )
        public, etag = now.order, now.etag
    else:
        public = await service.public(order, timeline_reader(caller))
        etag = order_etag(public)
    response.headers["ETag"] = etag
    if matches(etag, known):
        kept = ("etag", "preference-applied")
        headers = {k: v for k, v in response.headers.items() if k in kept}
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return public


@router.post(
    "/orders/{order_id}/cancel",
    summary="Cancel an order",
    response_model=OrderPublic,
    responses={
        202: {
            "description": "Cancellation accepted and still being carried out",
            "model": OrderPublic,
        },
        **problem_responses(
            OrderNotFound, OrderNotCancellable, OrderBeingHandedOver, *TEMPORAL_UNAVAILABLE
        ),
    },
)
async def cancel_order(
    order_id: str,
    caller: CurrentUser,
    state: State,
    session: DbSession,
    response: Response,
    body: OrderCancel | None = None,
) -> OrderPublic:
    """Cancel until a parcel has a label: the stock is given back, the authorisation
    voided (or a captured payment refunded), and the customer is emailed. An order
    already handed to the warehouse (`fulfillment_queued`) is cancelled through its
    fulfilment order, as long as no parcel of it has a label.

    Answers 200 with the cancelled order, or 202 if undoing the steps takes longer than
    a few seconds (it finishes in the background). Once any parcel has a label
    (`partially_shipped`, `shipped`, `delivered`), or when the order failed, it answers
    409 `order_not_cancellable`; cancelling twice is harmless. In the moment the order is
    being handed to the warehouse (its payment captured, its fulfilment not yet the one
    to cancel it) it answers 503 `order_being_handed_over` with `Retry-After`: the same
    request goes through a moment later.
    """
    service = order_service(state, session)
    order = await visible_order(service, order_id, caller)
    cancellation = OrderCancellation(service.orders, state.workflows)
    answer = await cancellation.cancel(order, body.reason if body else None)
    if answer.underway:
        response.status_code = status.HTTP_202_ACCEPTED  # accepted; still undoing
    return await service.public(answer.order, timeline_reader(caller))


@router.get(
    "/orders/{order_id}/shipments/{shipment_id}",
    summary="Track a parcel of an order",
    response_model=OrderShipmentDetail,
    responses=problem_responses(OrderNotFound, ShipmentNotFound),
)
async def get_order_shipment(
    order_id: str, shipment_id: str, caller: CurrentUser, state: State, session: DbSession
) -> OrderShipmentDetail:
    """One parcel of the order: status, carrier, tracking code and link, its lines, and
    the carrier's full tracking history, oldest first (status, message, location,
    time). Someone else's order answers 404 `order_not_found`; a parcel not in this
    order 404 `shipment_not_found`."""
    service = order_service(state, session)
    order = await visible_order(service, order_id, caller)
    return await FulfillmentReader(session).order_shipment(order.id, shipment_id)


@router.post(
    "/admin/orders/{order_id}/refunds",
    summary="Refund an order, in full or in part (staff)",
    response_model=OrderPublic,
    responses=problem_responses(
        OrderNotFound, NotRefundable, AmountNotRepresentable, PaymentUnavailable, PaymentRejected
    ),
)
async def refund_order(
    order_id: str,
    body: RefundCreate,
    caller: StaffUser,
    state: State,
    session: DbSession,
    idempotency_key: IdempotencyKeyHeader = None,
) -> OrderPublic:
    """Refund `amount` (minor units) of the captured payment, or all that is left.

    409 `payment_not_refundable` when nothing captured is left (or `amount` exceeds it,
    with `refundable`); 422 `amount_not_representable` for an `amount` Stripe cannot
    take exactly in the order's currency (with `multipleOf`: whole ariary in MGA, a KWD
    amount ending in 0; nothing is refunded); 503 `payment_unavailable` if Stripe cannot
    be reached or its answer was lost (nothing is recorded; try again with the same
    `Idempotency-Key`).
    Writes `payment.refunded` and a timeline entry. The answer is the order as staff
    see it: every timeline entry, the staff-only ones too.

    Send an `Idempotency-Key`: Stripe's refund is keyed by it, so a retry with the same
    key repeats the refund (made once, however often its answer was lost) and a new key
    makes a new refund. A keyed request is asked of Stripe even when `amount` is more
    than is left here (a lost first attempt counts in that once another refund is
    recorded): Stripe answers the refund made, or refuses (409, as above). Without one,
    the refund is keyed by the count of staff refunds recorded without a key: a retry
    after a lost answer still repeats it, but so is a new refund asked before the lost
    one is recorded taken for that retry (the same amount: the lost refund is recorded,
    no second one is made; another amount: 502 `payment_error`, nothing made).

    A refund that failed at Stripe since it was made (a retry after a lost answer, the
    card's bank having sent it back) answers 200 with the order as it stands: nothing
    refunded by it, its failure on the timeline."""
    service = order_service(state, session)
    order = await service.orders.require(order_id)
    await payments.refund(
        session,
        state.payments,
        order,
        amount=body.amount,
        reason=body.reason,
        staff_id=caller.user.id,
        request_key=idempotency_key,
    )
    return await service.public(order, TimelineAudience.STAFF)


@router.get(
    "/admin/orders",
    summary="Search all orders (staff)",
    response_model=Page[OrderSummary],
    responses=problem_responses((ValidationFailed, "invalid_time_range")),
)
async def admin_orders(
    caller: StaffUser,
    state: State,
    session: DbSession,
    page: Pagination = 1,
    limit: Limit = 20,
    status: OrderStatus | None = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=40)] = None,
    customer_id: Annotated[
        str | None,
        Query(
            alias="customerId",
            max_length=40,
            deprecated=True,
            description="The old name of `userId`; still accepted",
        ),
    ] = None,
    created_from: Annotated[IsoDatetime | None, Query(alias="from")] = None,
    created_to: Annotated[IsoDatetime | None, Query(alias="to")] = None,
) -> Page[OrderSummary]:
    """Every order, newest first, filtered by `status`, `userId` (the `userId` the
    orders carry) and a creation window `from` (inclusive) to `to` (exclusive), ISO 8601;
    `to` not after `from` is 422 `invalid_time_range` (as the analytics' windows are).
    Staff only."""
    if created_from is not None and created_to is not None and created_to <= created_from:
        raise ValidationFailed("to must be after from", code="invalid_time_range", field="to")
    items, total = await order_service(state, session).summaries(
        OrderFilter(
            user_id=user_id or customer_id,
            status=status,
            created_from=created_from,
            created_to=created_to,
        ),
        offset=(page - 1) * limit,
        limit=limit,
    )
    return Page(items=items, total=total, page=page, limit=limit)
