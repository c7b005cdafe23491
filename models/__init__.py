"""SQLModel tables, one module per domain. Importing this package registers them all."""

from models.analytics import AnalyticsEvent, AnalyticsEventLink
from models.analytics_rollups import AnalyticsEventHour
from models.auth import RefreshToken
from models.base import metadata
from models.carts import Cart, CartItem, CartShare
from models.catalog import Category, Product, Review
from models.customers import LifetimeValueEntry
from models.easypost_sandbox import SandboxEasyPostObject
from models.email import EmailMessage, SandboxEmail
from models.events import EventDelivery, EventReceipt, EventSubscription
from models.fulfillment import (
    Fulfillment,
    FulfillmentLine,
    Shipment,
    ShipmentLabel,
    ShipmentLine,
    TrackingEvent,
)
from models.hubspot_sandbox import SandboxHubSpotObject
from models.inventory import PurchaseOrder, Reservation, StockLevel, StockMovement
from models.marketing import MarketingContact, SandboxMarketingRecord
from models.notifications import Notification
from models.orders import Order, OrderEvent, OrderLine
from models.outbox import OutboxEvent
from models.payments import Payment, PaymentEvent
from models.pricing import Coupon, CouponRedemption, Discount
from models.returns import ReturnLine, ReturnRequest
from models.sandbox import SandboxStripeObject
from models.users import Address, User
from models.webhook_deliveries import WebhookAttempt, WebhookDelivery
from models.webhooks import WebhookEndpoint
from models.workflow_starts import WorkflowStart

__all__ = [
    "Address",
    "AnalyticsEvent",
    "AnalyticsEventHour",
    "AnalyticsEventLink",
    "Cart",
    "CartItem",
    "CartShare",
    "Category",
    "Coupon",
    "CouponRedemption",
    "Discount",
    "EmailMessage",
    "EventDelivery",
    "EventReceipt",
    "EventSubscription",
    "Fulfillment",
    "FulfillmentLine",
    "LifetimeValueEntry",
    "MarketingContact",
    "Notification",
    "Order",
    "OrderEvent",
    "OrderLine",
    "OutboxEvent",
    "Payment",
    "PaymentEvent",
    "Product",
    "PurchaseOrder",
    "RefreshToken",
    "Reservation",
    "ReturnLine",
    "ReturnRequest",
    "Review",
    "SandboxEasyPostObject",
    "SandboxEmail",
    "SandboxHubSpotObject",
    "SandboxMarketingRecord",
    "SandboxStripeObject",
    "Shipment",
    "ShipmentLabel",
    "ShipmentLine",
    "StockLevel",
    "StockMovement",
    "TrackingEvent",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkflowStart",
    "metadata",
]
