"""The errors a return request or a staff action can answer, with their stable codes."""

from __future__ import annotations

from http import HTTPStatus

from core.errors import Conflict, ShopError


class OrderNotDelivered(Conflict):
    code = "order_not_delivered"
    title = "Nothing of this order has been delivered yet"


class ReturnWindowClosed(Conflict):
    code = "return_window_closed"
    title = "The return window of this line has closed"


class UnknownOrderLine(ShopError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "unknown_order_line"
    title = "The order has no such line"


class LineNotDelivered(ShopError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "line_not_delivered"
    title = "This line has not been delivered"


class ReturnQuantityExceedsDelivered(ShopError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "return_quantity_exceeds_delivered"
    title = "More units than were delivered and not yet returned"


class ReturnNotActionable(Conflict):
    """A staff action the return's status does not allow (the workflow's validators say
    which: ``return_not_requested``, ``return_not_approved``)."""

    code = "return_not_actionable"
    title = "The return cannot take this action in its status"


class InvalidReceipt(ShopError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_receipt"
    title = "The received quantities do not fit the return's lines"


class ReturnNotSettleable(Conflict):
    """Only a return whose refund was refused for good is settled by hand; any other is
    the workflow's to finish (or was settled with another amount)."""

    code = "return_not_settleable"
    title = "The return has no refused refund to settle"


class SettlementTooLarge(ShopError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "settlement_exceeds_refund"
    title = "More than the refund fixed at receipt"


def failure_note(refund_id: str, reason: str) -> str:
    """A return's ``refundError`` when its refund failed at Stripe."""
    return f"the refund {refund_id} failed at Stripe ({reason})"
