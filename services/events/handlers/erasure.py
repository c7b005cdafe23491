"""``user.deleted`` → ``account_erasure``: what the shop's own tables still held of the
person once ``UserService.delete`` anonymised the account (its name, email, password,
addresses, its orders' email, the email ledger's addresses and the email and name in its
recorded workflow starts' inputs, in the deletion's transaction):

- their notifications are deleted (they tell what they bought, where it went, tracking);
- the outbox's events about them (their own, their orders') lose their email and name;
- their analytics events (and the funnel's links and first-seen row) count for a new
  random pseudonym (``erased:…``) instead of the account, with no user id, and the
  anonymous ids they signed in with are no longer linked: every figure (dashboard,
  funnel, retention) stays as it was, nothing leads back to the account. Events written
  for the account after this (an order of it paid later) count for no one: their writers
  and the hourly rollup see the account erased (``AnalyticsRepository.erased_accounts``,
  ``RollupRepository.unlink_erased``).

Idempotent: run again, it finds nothing of the account left. In the relay's delivery
transaction, so a crash midway leaves it to the next delivery. Webhook payloads are the
``webhooks`` subscriber's own (``handlers/webhooks.py``); CRM and marketing contacts
their subscribers'.
"""

from __future__ import annotations

import logging
import secrets

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from services.analytics import AnalyticsRepository
from services.events.repository import EventRepository
from services.events.subscribers import DomainEvent, Subscriber
from services.notifications.repository import NotificationRepository
from services.order_repository import OrderRepository
from services.users import PERSONAL_KEYS, without_person

log = logging.getLogger(__name__)

NAME = "account_erasure"


def account_erasure_subscriber() -> Subscriber:
    return Subscriber(NAME, frozenset({EventType.USER_DELETED}), erase_account)


async def erase_account(event: DomainEvent, session: AsyncSession) -> None:
    user_id = str(event.data.get("userId") or event.aggregate_id)
    notifications = await NotificationRepository(session).delete_for_user(user_id)
    # Random, so that no id of the account (nor of this event) names the pseudonym.
    pseudonym = f"erased:{secrets.token_hex(12)}"
    events = await AnalyticsRepository(session).pseudonymise(user_id, pseudonym)
    outbox = await _erase_from_outbox(session, user_id)
    log.info(
        "account erased",
        extra={
            "user": user_id,
            "notifications": notifications,
            "analytics_events": events,
            "outbox_events": outbox,
        },
    )


async def _erase_from_outbox(session: AsyncSession, user_id: str) -> int:
    """Events written before the deletion (kept until pruned, shown to staff at
    ``/api/admin/events``, replayable) no longer carry the person's email and name. No
    subscriber reads them from the event (each reads the account or the order)."""
    events = EventRepository(session)
    order_ids = await OrderRepository(session).ids_for_user(user_id)
    erased = 0
    for row in await events.about_user(user_id, order_ids):
        if any(k in row.data for k in PERSONAL_KEYS):
            row.data = without_person(row.data)
            events.stage(row)
            erased += 1
    return erased
