"""Subscribers that act on domain events: each module's functions return a ``Subscriber``
(``services/events/subscribers.py`` holds the handler contract they keep)."""

from __future__ import annotations

from redis.asyncio import Redis

from core.db import SessionFactory
from core.settings import Settings
from integrations.marketing.client import MarketingClient
from services.email import EmailService
from services.events.handlers.inventory import (
    auto_reorder,
    low_stock_alert,
    stock_not_put_back_alert,
)
from services.events.handlers.lifetime_value import LIFETIME_VALUE
from services.events.handlers.marketing import marketing_subscriber
from services.events.handlers.payments import (
    payment_failed_email,
    payment_failure_metrics,
    refund_email,
)
from services.events.handlers.refund_failures import refund_failed_alert, refund_failed_email
from services.events.handlers.returns import return_emails, return_request_alert
from services.events.handlers.shipping import (
    order_delivered_email,
    shipment_delayed_alert,
    shipment_shipped_email,
)
from services.events.subscribers import Subscriber

__all__ = [
    "LIFETIME_VALUE",
    "alert_and_email_subscribers",
    "auto_reorder",
    "customer_value_subscribers",
    "low_stock_alert",
    "marketing_subscriber",
    "order_delivered_email",
    "payment_failed_email",
    "payment_failure_metrics",
    "refund_email",
    "refund_failed_alert",
    "refund_failed_email",
    "return_emails",
    "return_request_alert",
    "shipment_delayed_alert",
    "shipment_shipped_email",
    "stock_not_put_back_alert",
]


def alert_and_email_subscribers(
    emails: EmailService, redis: Redis, settings: Settings
) -> list[Subscriber]:
    """The low-stock alert and auto-reorder, the alert of units not put back on the
    stock, the payment emails and counter, a bounced refund's alert and email, and the
    return emails (the customer's, and staff's alert of a request to decide)."""
    return [
        low_stock_alert(emails, settings),
        auto_reorder(),
        stock_not_put_back_alert(emails, settings),
        payment_failed_email(emails, settings),
        payment_failure_metrics(redis),
        refund_email(emails, settings),
        refund_failed_alert(emails, settings),
        refund_failed_email(emails, settings),
        return_emails(emails, settings),
        return_request_alert(emails, settings),
    ]


def shipping_subscribers(emails: EmailService, settings: Settings) -> list[Subscriber]:
    """The customer's parcel and delivery emails, and the staff's delayed-parcel alert."""
    return [
        shipment_shipped_email(emails, settings),
        order_delivered_email(emails, settings),
        shipment_delayed_alert(emails, settings),
    ]


def customer_value_subscribers(
    marketing: MarketingClient, sessions: SessionFactory
) -> list[Subscriber]:
    """Lifetime value, and the customer's marketing contact (``integrations.marketing.
    factory.build_marketing_client(settings)`` gives the deployment's client)."""
    return [LIFETIME_VALUE, marketing_subscriber(marketing, sessions)]
