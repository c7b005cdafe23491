"""Returns (RMA), staff's side: every return listed and read, a requested return
approved or declined and what came back recorded (Updates of the return's
``ReturnWorkflow``), a refused refund settled."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from api.deps import DbSession, Limit, Pagination, State
from api.problems import TEMPORAL_UNAVAILABLE, problem_responses
from api.routes.returns import returns_for
from api.security import StaffUser
from integrations.payments.gateway import PaymentRejected, PaymentUnavailable
from models.base import Page
from models.returns import (
    ReturnDecline,
    ReturnPublic,
    ReturnReceive,
    ReturnRequest,
    ReturnSettle,
    ReturnStatus,
)
from services.payments import NotRefundable
from services.returns import (
    InvalidReceipt,
    ReturnNotActionable,
    ReturnNotFound,
    ReturnNotSettleable,
    ReturnService,
    ReturnSteps,
    SettlementTooLarge,
)
from temporal.clients.connection import WorkflowNotFound, WorkflowRefused
from workflows.types.returns import (
    ApproveRequest,
    DeclineRequest,
    ReceivedLine,
    ReceiveRequest,
)

router = APIRouter(tags=["returns"])

RECEIVE_EXAMPLE = {
    "lines": [
        {
            "returnLineId": "rline_01JD3Q5Z8K2M4N6P8R0T2V4X6Z",
            "receivedQuantity": 1,
            "damagedQuantity": 1,
        }
    ]
}
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted; the workflow is still at it", "model": ReturnPublic}
}
STAFF_ACTION_PROBLEMS = (ReturnNotFound, ReturnNotActionable, *TEMPORAL_UNAVAILABLE)
REFUSED = {
    "approve": (ReturnNotActionable, "return_not_requested"),
    "label": (ReturnNotActionable, "return_label_failed"),
    "receive": (ReturnNotActionable, "return_not_approved"),
}


@router.get(
    "/admin/returns",
    summary="List returns (staff)",
    response_model=Page[ReturnPublic],
    responses=problem_responses(),
)
async def admin_returns(
    caller: StaffUser,
    state: State,
    session: DbSession,
    page: Pagination = 1,
    limit: Limit = 20,
    status: ReturnStatus | None = None,
    order_id: Annotated[str | None, Query(alias="orderId", max_length=40)] = None,
) -> Page[ReturnPublic]:
    """Every return, newest first, filtered by `status` and `orderId`."""
    items, total = await returns_for(state, session).page(
        status=status, order_id=order_id, offset=(page - 1) * limit, limit=limit
    )
    return Page(items=items, total=total, page=page, limit=limit)


@router.get(
    "/admin/returns/{return_id}",
    summary="Get a return (staff)",
    response_model=ReturnPublic,
    responses=problem_responses(ReturnNotFound),
)
async def admin_return(
    return_id: str, caller: StaffUser, state: State, session: DbSession
) -> ReturnPublic:
    """Any customer's return."""
    service = returns_for(state, session)
    return await service.public(await service.get(return_id))


async def _after_action(
    service: ReturnService,
    session: DbSession,
    request: ReturnRequest,
    done: bool,
    response: Response,
) -> ReturnPublic:
    if not done:
        response.status_code = status.HTTP_202_ACCEPTED
    await session.refresh(request)
    return await service.public(request)


def _expect(request: ReturnRequest, status_: ReturnStatus, code: str) -> None:
    """The row tells at once what a finished workflow would no longer answer."""
    if request.status != status_:
        raise ReturnNotActionable(f"the return is {request.status}", code=code)


async def _act(
    state: State, return_id: str, action: str, send: Callable[[], Awaitable[bool]]
) -> bool:
    try:
        result = await send()
    except WorkflowRefused as exc:
        if exc.code == InvalidReceipt.code:
            raise InvalidReceipt(exc.detail) from exc
        raise ReturnNotActionable(exc.detail, code=exc.code) from exc
    except WorkflowNotFound as exc:
        raise ReturnNotActionable(
            f"return {return_id} can no longer {action}", code="return_not_actionable"
        ) from exc
    return bool(result)


@router.post(
    "/admin/returns/{return_id}/approve",
    summary="Approve a return (staff)",
    response_model=ReturnPublic,
    responses={
        **ACCEPTED,
        **problem_responses(*STAFF_ACTION_PROBLEMS, REFUSED["approve"], REFUSED["label"]),
    },
)
async def approve_return(
    return_id: str, caller: StaffUser, state: State, session: DbSession, response: Response
) -> ReturnPublic:
    """Approve a `requested` return: the return label is bought from the carrier and the
    customer is emailed it (`labelUrl`, `trackingCode`); the goods must be back within
    RETURN_SHIP_BY_DAYS (`shipBy`) or the return is cancelled. 409
    `return_not_requested` once decided; 409 `return_label_failed` if the carrier
    refuses the label (approve again, or decline). 202 if the label is still being
    bought."""
    service = returns_for(state, session)
    request = await service.get(return_id)
    _expect(request, ReturnStatus.REQUESTED, "return_not_requested")
    done = await _act(
        state,
        return_id,
        "be approved",
        partial(
            state.workflows.returns.approve, return_id, ApproveRequest(staff_id=caller.user.id)
        ),
    )
    return await _after_action(service, session, request, done, response)


@router.post(
    "/admin/returns/{return_id}/decline",
    summary="Decline a return (staff)",
    response_model=ReturnPublic,
    responses={**ACCEPTED, **problem_responses(*STAFF_ACTION_PROBLEMS, REFUSED["approve"])},
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"example": {"reason": "worn, not returnable"}}}
        }
    },
)
async def decline_return(
    return_id: str,
    body: ReturnDecline,
    caller: StaffUser,
    state: State,
    session: DbSession,
    response: Response,
) -> ReturnPublic:
    """Decline a `requested` return with a `reason` (the customer is emailed it). 409
    `return_not_requested` once decided; 422 `validation_error` without a reason (blank
    counts as none)."""
    service = returns_for(state, session)
    request = await service.get(return_id)
    _expect(request, ReturnStatus.REQUESTED, "return_not_requested")
    decline = DeclineRequest(reason=body.reason, staff_id=caller.user.id)
    done = await _act(
        state,
        return_id,
        "be declined",
        partial(state.workflows.returns.decline, return_id, decline),
    )
    return await _after_action(service, session, request, done, response)


@router.post(
    "/admin/returns/{return_id}/receive",
    summary="Record what came back (staff)",
    response_model=ReturnPublic,
    responses={
        **ACCEPTED,
        **problem_responses(
            *STAFF_ACTION_PROBLEMS,
            REFUSED["receive"],
            (ReturnNotActionable, "payment_not_refundable"),
            InvalidReceipt,
        ),
    },
    openapi_extra={"requestBody": {"content": {"application/json": {"example": RECEIVE_EXAMPLE}}}},
)
async def receive_return(
    return_id: str,
    body: ReturnReceive,
    caller: StaffUser,
    state: State,
    session: DbSession,
    response: Response,
) -> ReturnPublic:
    """Per return line: `receivedQuantity` units back in good condition (restocked,
    ledger reason `return`) and `damagedQuantity` units back damaged (not restocked);
    together at most the line's quantity (422 `invalid_receipt`); lines left out count
    as nothing received. Undamaged units the stock has no room for (it would pass the
    most a product holds, 2,147,483,647) are received and refunded all the same, not put
    back on hand: a `return` ledger movement of 0 and an entry on the order's timeline
    say how many, for staff to count in by hand. Every unit received, damaged or not, is
    refunded: the return then moves to `received`, `refunded` and `closed` (202 while the
    refund is still under way). 409 `return_not_approved` unless the return is `approved`; 409
    `payment_not_refundable` when Stripe no longer has the amount to refund (a staff
    refund took it after receipt): the return stays `received`, its workflow failed with
    that type, for staff to settle (see the README's "Returns")."""
    service = returns_for(state, session)
    request = await service.get(return_id)
    _expect(request, ReturnStatus.APPROVED, "return_not_approved")
    receipt = ReceiveRequest(
        lines=[
            ReceivedLine(
                return_line_id=ln.return_line_id,
                received_quantity=ln.received_quantity,
                damaged_quantity=ln.damaged_quantity,
            )
            for ln in body.lines
        ],
        staff_id=caller.user.id,
    )
    done = await _act(
        state,
        return_id,
        "be received",
        partial(state.workflows.returns.receive, return_id, receipt),
    )
    return await _after_action(service, session, request, done, response)


@router.post(
    "/admin/returns/{return_id}/settle",
    summary="Settle a return whose refund was refused (staff)",
    response_model=ReturnPublic,
    responses=problem_responses(
        ReturnNotFound,
        ReturnNotSettleable,
        SettlementTooLarge,
        NotRefundable,
        PaymentUnavailable,
        PaymentRejected,
    ),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {"amount": 787, "note": "30.00 went back by a staff refund"}
                }
            }
        }
    },
)
async def settle_return(
    return_id: str, body: ReturnSettle, caller: StaffUser, state: State, session: DbSession
) -> ReturnPublic:
    """A return stays `received` with `refundError` when Stripe refused its refund for
    good (another refund took the money after receipt), and is back to `received` with
    it when its refund failed later (`refund.failed`: the card's bank sent it back).
    Staff settle it here: `amount` (minor units, 0 when the money went back another way)
    is refunded now, keyed at Stripe by `return:{id}:settlement:{amount}` (and
    `:after:{refundId}` of the refund that failed), and the return is `closed` with
    `settlementNote`; `return.refunded` (`settled`, `owed`) emails the customer. Sent
    again with the same amount it changes nothing: after a lost answer (503), send the
    same amount again.

    409 `return_not_settleable` for a return whose refund was not refused (its workflow
    finishes it) or that was settled with another amount; 422 `settlement_exceeds_refund`
    above the amount fixed at receipt (`owed`); 409 `payment_not_refundable` above what
    Stripe has left (`refundable`); 503 `payment_unavailable` if Stripe cannot be reached
    (nothing recorded: send it again)."""
    await ReturnSteps(state.sessions, state.payments).settle(
        return_id, amount=body.amount, note=body.note, staff_id=caller.user.id
    )
    service = returns_for(state, session)
    return await service.public(await service.get(return_id))
