"""Returns (RMA): a customer's request for delivered lines, and what follows it.

- ``requests``: the request, checked against what was delivered, and the views;
- ``labels``: ``ReturnWorkflow``'s steps around the label (approve, decline, cancel);
- ``lifecycle``: its steps once the goods are back (``ReturnSteps``): receive and restock
  (``receipt``), refund and the staff's settlement (``refund_steps``), close; ``timeline``
  what each step tells the order's timeline and its event;
- ``refunds``: what a return refunds (a pure function);
- ``repository``: all return SQL; ``errors``: the codes a client can get.
"""

from services.returns.errors import (
    InvalidReceipt,
    LineNotDelivered,
    OrderNotDelivered,
    ReturnNotActionable,
    ReturnNotSettleable,
    ReturnQuantityExceedsDelivered,
    ReturnWindowClosed,
    SettlementTooLarge,
    UnknownOrderLine,
)
from services.returns.labels import ReturnLabels
from services.returns.lifecycle import ReturnSteps
from services.returns.refund_steps import refund_key
from services.returns.refunds import OrderAmounts, RefundBreakdown, return_refund
from services.returns.repository import ReturnNotFound, ReturnRepository
from services.returns.requests import ReturnService

__all__ = [
    "InvalidReceipt",
    "LineNotDelivered",
    "OrderAmounts",
    "OrderNotDelivered",
    "RefundBreakdown",
    "ReturnLabels",
    "ReturnNotActionable",
    "ReturnNotFound",
    "ReturnNotSettleable",
    "ReturnQuantityExceedsDelivered",
    "ReturnRepository",
    "ReturnService",
    "ReturnSteps",
    "ReturnWindowClosed",
    "SettlementTooLarge",
    "UnknownOrderLine",
    "refund_key",
    "return_refund",
]
