"""The catalogue of domain events: every type ``publish`` accepts, and its aggregate.

Events of one aggregate (``aggregate_type``, ``aggregate_id``) are delivered to each
subscriber in ``seq`` order. Payment and fulfilment events belong to their order, so an
order's ``order.created``, ``payment.refunded`` and ``order.cancelled`` reach a
subscriber in the order they happened. A type added here needs a subscriber
(``tests/events/test_catalogue.py`` fails otherwise).
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    USER_CREATED = "user.created"
    USER_DELETED = "user.deleted"
    ORDER_CREATED = "order.created"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_FAILED = "order.failed"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REFUNDED = "payment.refunded"
    # A refund Stripe answered ``succeeded`` that failed later (``refund.failed``: the
    # card's bank sent it back); its money is the shop's again, owed to the customer.
    PAYMENT_REFUND_FAILED = "payment.refund_failed"
    FULFILLMENT_ORDER_READY = "fulfillment.order_ready"
    INVENTORY_LOW_STOCK = "inventory.low_stock"
    # Units coming back in a worker's step (an undone order's sale, a return's receipt)
    # that the stock had no room for: staff count them in by hand.
    INVENTORY_STOCK_NOT_PUT_BACK = "inventory.stock_not_put_back"
    # Something a search reads changed: name, description, price, category, active,
    # deleted, rating, or stock crossing zero. The search index re-reads the product.
    PRODUCT_CHANGED = "product.changed"
    # After the sale (fulfilment, shipments, returns).
    FULFILLMENT_ON_HOLD = "fulfillment.on_hold"
    SHIPMENT_SHIPPED = "shipment.shipped"
    SHIPMENT_DELAYED = "shipment.delayed"
    ORDER_DELIVERED = "order.delivered"
    RETURN_REQUESTED = "return.requested"
    RETURN_APPROVED = "return.approved"
    RETURN_DECLINED = "return.declined"
    RETURN_RECEIVED = "return.received"
    RETURN_REFUNDED = "return.refunded"
    # An approved return not sent back within RETURN_SHIP_BY_DAYS.
    RETURN_CANCELLED = "return.cancelled"
    # Staff's alert: an outgoing webhook endpoint was disabled after failing too long.
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"
    # Published by `shop bench events` (and tests) to measure commit-to-handler lag.
    RELAY_PROBE = "system.relay_probe"


class AggregateType(StrEnum):
    USER = "user"
    ORDER = "order"
    PRODUCT = "product"
    SYSTEM = "system"
    WEBHOOK_ENDPOINT = "webhook_endpoint"


AGGREGATE_OF: dict[EventType, AggregateType] = {
    EventType.USER_CREATED: AggregateType.USER,
    EventType.USER_DELETED: AggregateType.USER,
    EventType.ORDER_CREATED: AggregateType.ORDER,
    EventType.ORDER_CANCELLED: AggregateType.ORDER,
    EventType.ORDER_FAILED: AggregateType.ORDER,
    EventType.PAYMENT_FAILED: AggregateType.ORDER,
    EventType.PAYMENT_REFUNDED: AggregateType.ORDER,
    EventType.PAYMENT_REFUND_FAILED: AggregateType.ORDER,
    EventType.FULFILLMENT_ORDER_READY: AggregateType.ORDER,
    EventType.INVENTORY_LOW_STOCK: AggregateType.PRODUCT,
    EventType.INVENTORY_STOCK_NOT_PUT_BACK: AggregateType.PRODUCT,
    EventType.PRODUCT_CHANGED: AggregateType.PRODUCT,
    EventType.FULFILLMENT_ON_HOLD: AggregateType.ORDER,
    EventType.SHIPMENT_SHIPPED: AggregateType.ORDER,
    EventType.SHIPMENT_DELAYED: AggregateType.ORDER,
    EventType.ORDER_DELIVERED: AggregateType.ORDER,
    EventType.RETURN_REQUESTED: AggregateType.ORDER,
    EventType.RETURN_APPROVED: AggregateType.ORDER,
    EventType.RETURN_DECLINED: AggregateType.ORDER,
    EventType.RETURN_RECEIVED: AggregateType.ORDER,
    EventType.RETURN_REFUNDED: AggregateType.ORDER,
    EventType.RETURN_CANCELLED: AggregateType.ORDER,
    EventType.WEBHOOK_ENDPOINT_DISABLED: AggregateType.WEBHOOK_ENDPOINT,
    EventType.RELAY_PROBE: AggregateType.SYSTEM,
}
