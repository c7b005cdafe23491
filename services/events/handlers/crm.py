"""The CRM subscriber: the CRM (HubSpot) learns of customers and their orders.

- ``user.created``: the new account becomes a contact (a lead until it orders);
- ``order.created``: the customer's contact is upserted by email (name, our customer id)
  and the order's deal is created, keyed by the order id, in the "placed" stage (or the
  stage the order has reached since, for an ``order.created`` replayed late) and
  associated with the contact;
- ``fulfillment.order_ready``: the deal is won;
- ``order.cancelled``, ``order.failed``, ``payment.failed``: the deal is lost (an order
  that ended before it was confirmed has no deal: nothing to do; one whose capture failed
  after it was confirmed has);
- ``user.deleted``: the customer's contacts are erased (GDPR), as the shop forgets them.

Events carry ids; the customer's email and name are read from the database through the
handler's session, the account held (``UserRepository.hold``, ``FOR SHARE``) until the
handler's transaction ends: the account cannot be deleted, nor its ``user.deleted``
published, while its contact is being written, so the erasure that follows finds the
contact. Effects are keyed at the CRM (contact by email, deal by a unique order
id property), so a redelivered event changes nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import ValidationFailed
from core.events import EventType
from core.money import Money, MoneyError
from integrations.crm.client import Contact, CrmClient, Deal, DealStage
from models.orders import OrderStatus
from models.users import User
from services.events.subscribers import DomainEvent, Subscriber
from services.order_repository import OrderRepository
from services.users import UserRepository

log = logging.getLogger(__name__)

SUBSCRIBER_NAME = "crm"
CRM_EVENTS = frozenset(
    {
        EventType.USER_CREATED,
        EventType.ORDER_CREATED,
        EventType.FULFILLMENT_ORDER_READY,
        EventType.ORDER_CANCELLED,
        EventType.ORDER_FAILED,
        EventType.PAYMENT_FAILED,
        EventType.USER_DELETED,
    }
)


class MalformedEvent(ValidationFailed):
    """An event without what the CRM needs: retrying cannot help (a dead letter)."""

    code = "malformed_event"
    title = "The event lacks data the subscriber needs"


def split_name(name: str) -> tuple[str, str]:
    """``"Ada King Lovelace"`` is ``("Ada King", "Lovelace")``; one word is a first name."""
    words = name.split()
    if len(words) < 2:
        return (words[0] if words else ""), ""
    return " ".join(words[:-1]), words[-1]


def _field(event: DomainEvent, key: str) -> Any:
    value = event.data.get(key)
    if value is None or value == "":
        raise MalformedEvent(f"{event.type} {event.id} has no {key}")
    return value


# Where an order's status puts its deal (an order before or at "confirmed" is placed).
_WON = frozenset(
    {
        OrderStatus.FULFILLMENT_QUEUED,
        OrderStatus.PARTIALLY_SHIPPED,
        OrderStatus.SHIPPED,
        OrderStatus.DELIVERED,
    }
)
_LOST = frozenset({OrderStatus.CANCELLED, OrderStatus.FAILED})


def deal_stage_of(status: OrderStatus) -> DealStage:
    """The stage the order's events so far have put its deal at: won from
    ``fulfillment.order_ready`` on, lost once cancelled or failed."""
    if status in _LOST:
        return DealStage.LOST
    if status in _WON:
        return DealStage.WON
    return DealStage.PLACED


class CrmSync:
    """What each event does to the CRM."""

    def __init__(self, crm: CrmClient) -> None:
        self.crm = crm

    async def handle(self, event: DomainEvent, session: AsyncSession) -> None:
        match event.type:
            case EventType.ORDER_CREATED:
                await self.order_created(event, session)
            case EventType.FULFILLMENT_ORDER_READY:
                await self.move_deal(event, DealStage.WON)
            case EventType.ORDER_CANCELLED | EventType.ORDER_FAILED | EventType.PAYMENT_FAILED:
                # A failure after create-order (its capture failed) loses the deal too.
                await self.move_deal(event, DealStage.LOST)
            case EventType.USER_CREATED:
                await self.user_created(event, session)
            case EventType.USER_DELETED:
                await self.user_deleted(event)
            case _:
                raise MalformedEvent(f"the CRM subscriber does not take {event.type}")

    async def user_created(self, event: DomainEvent, session: AsyncSession) -> None:
        """A new account is a contact from the start (a lead until they order)."""
        user = await UserRepository(session).hold(str(_field(event, "userId")))
        if user is None:
            return  # deleted since: its user.deleted follows and forgets it
        await self.upsert_contact(user)

    async def upsert_contact(self, user: User) -> str:
        first, last = split_name(user.name)
        return await self.crm.upsert_contact(
            Contact(email=user.email, first_name=first, last_name=last, user_id=user.id)
        )

    async def order_created(self, event: DomainEvent, session: AsyncSession) -> None:
        order_id = str(_field(event, "orderId"))
        try:
            amount = Money(int(_field(event, "total")), str(_field(event, "currency")))
        except (MoneyError, TypeError, ValueError) as exc:
            raise MalformedEvent(f"{event.type} {event.id}: {exc}") from exc
        user = await UserRepository(session).hold(str(_field(event, "userId")))
        contact_id = None
        if user is not None:  # a deleted customer's order is a deal without a contact
            contact_id = await self.upsert_contact(user)
        # The stage the order is at now, not always "placed": an order.created that
        # reaches the CRM after the order moved on (a dead letter replayed once its
        # cancellation, or its hand-over to the warehouse, found no deal to move) makes
        # the deal where that later event would have put it. In order, it is "placed",
        # or the next event of the order moves it there anyway.
        order = await OrderRepository(session).get(order_id)
        stage = deal_stage_of(order.status) if order is not None else DealStage.PLACED
        deal = Deal(
            order_id=order_id,
            name=f"Order {order_id}",
            amount=amount,
            stage=stage,
            close_date=(
                order.updated_at
                if order is not None and stage is not DealStage.PLACED
                else event.created_at
            ),
        )
        await self.crm.upsert_deal(deal, contact_id)

    async def move_deal(self, event: DomainEvent, stage: DealStage) -> None:
        order_id = str(event.data.get("orderId") or event.aggregate_id)
        if not await self.crm.set_deal_stage(order_id, stage, event.created_at):
            # Cancelled before it was confirmed (no order.created), or removed by hand.
            log.info("no CRM deal for order %s: %s changes nothing", order_id, event.type)

    async def user_deleted(self, event: DomainEvent) -> None:
        user_id = str(event.data.get("userId") or event.aggregate_id)
        erased = await self.crm.forget_contacts(user_id)
        log.info("erased %d CRM contact(s) of user %s", erased, user_id)


def crm_subscriber(crm: CrmClient) -> Subscriber:
    return Subscriber(SUBSCRIBER_NAME, CRM_EVENTS, CrmSync(crm).handle)
