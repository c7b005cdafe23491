"""Returns (RMA): the customer asks, staff approve or decline and record the receipt;
``ReturnWorkflow`` does the rest (label, restock, refund). Staff's routes are in
``admin_returns``."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Response, status

from api.deps import DbSession, State, after_commit
from api.problems import problem_responses
from api.security import CurrentUser
from models.returns import (
    REASON_TEXT,
    SHOP_FAULT_REASONS,
    ReturnCreate,
    ReturnPublic,
    ReturnReason,
    ReturnReasonPublic,
)
from services.order_repository import OrderNotFound
from services.returns import (
    LineNotDelivered,
    OrderNotDelivered,
    ReturnNotFound,
    ReturnQuantityExceedsDelivered,
    ReturnService,
    ReturnWindowClosed,
    UnknownOrderLine,
)

router = APIRouter(tags=["returns"])

REQUEST_EXAMPLE = {
    "lines": [{"orderLineId": "oline_01JD3Q5Z8K2M4N6P8R0T2V4X6Z", "quantity": 1}],
    "reason": "damaged",
    "note": "The mug arrived with a chipped handle.",
}


def returns_for(state: State, session: DbSession) -> ReturnService:
    return ReturnService(session, state.settings)


@router.get(
    "/returns/reasons",
    summary="The reasons a return can give",
    response_model=list[ReturnReasonPublic],
    responses=problem_responses(),
)
async def return_reasons(state: State) -> list[ReturnReasonPublic]:
    """Every reason, whether it is the shop's fault (the refund then includes the
    order's shipping) and whether it is approved without waiting for staff
    (RETURN_AUTO_APPROVE_REASONS)."""
    auto = state.settings.auto_approve_reasons
    return [
        ReturnReasonPublic(
            reason=r,
            description=REASON_TEXT[r],
            shop_fault=r in SHOP_FAULT_REASONS,
            auto_approved=str(r) in auto,
        )
        for r in ReturnReason
    ]


@router.post(
    "/orders/{order_id}/returns",
    status_code=status.HTTP_201_CREATED,
    summary="Ask to return delivered items",
    response_model=ReturnPublic,
    responses=problem_responses(
        OrderNotFound,
        OrderNotDelivered,
        ReturnWindowClosed,
        UnknownOrderLine,
        LineNotDelivered,
        ReturnQuantityExceedsDelivered,
    ),
    openapi_extra={"requestBody": {"content": {"application/json": {"example": REQUEST_EXAMPLE}}}},
)
async def request_return(
    order_id: str,
    body: ReturnCreate,
    caller: CurrentUser,
    state: State,
    session: DbSession,
    response: Response,
) -> ReturnPublic:
    """Ask to send delivered lines back: 201 with the return in status `requested`.

    Name each line by `orderLineId` (or by `productId` when the order has one line of
    it), with a `quantity`; give a `reason` (see `GET /api/returns/reasons`) and an
    optional `note` (≤ 1000 characters). Only your own orders (404 otherwise); 409
    `order_not_delivered` while nothing has been delivered; 422 `unknown_order_line`,
    422 `line_not_delivered` for a line not delivered yet, 409 `return_window_closed`
    past RETURN_WINDOW_DAYS after that line's delivery, 422
    `return_quantity_exceeds_delivered` for more than was delivered less what earlier
    returns (not declined or cancelled) take back.

    Staff approve it, or it is approved at once for a reason in
    RETURN_AUTO_APPROVE_REASONS; the approval comes with a return label (`labelUrl`).
    An `Idempotency-Key` header makes a retry answer the first return.
    """
    request, start = await returns_for(state, session).request(caller.user.id, order_id, body)
    after_commit(session, partial(state.workflows.starts.start, start))
    response.headers["Location"] = f"/api/returns/{request.id}"
    return await returns_for(state, session).public(request)


@router.get(
    "/orders/{order_id}/returns",
    summary="The returns of one of your orders",
    response_model=list[ReturnPublic],
    responses=problem_responses(OrderNotFound),
)
async def order_returns(
    order_id: str, caller: CurrentUser, state: State, session: DbSession
) -> list[ReturnPublic]:
    """Oldest first, with their lines, label and refund. Someone else's order is 404
    (staff see every order's)."""
    user_id = None if caller.is_staff else caller.user.id
    return await returns_for(state, session).of_order(order_id, user_id=user_id)


@router.get(
    "/returns/{return_id}",
    summary="Get one of your returns",
    response_model=ReturnPublic,
    responses=problem_responses(ReturnNotFound),
)
async def get_return(
    return_id: str, caller: CurrentUser, state: State, session: DbSession
) -> ReturnPublic:
    """Its status (`requested`, `approved`, `declined`, `received`, `refunded`,
    `closed`, `cancelled`), lines with what was received, the label and the refund.
    Someone else's return is 404 (staff see any, as `GET /api/admin/returns/{id}`)."""
    service = returns_for(state, session)
    user_id = None if caller.is_staff else caller.user.id
    return await service.public(await service.get(return_id, user_id=user_id))
