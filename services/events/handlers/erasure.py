"""``user.deleted`` → ``account_erasure``: what the shop's own tables still held of the
person once ``UserService.delete`` anonymised the account (its name, email, password,
addresses, its orders' email and the email ledger's addresses, in the deletion's
transaction):

- their notifications are deleted (they tell what they bought, where it went, tracking);
- their analytics events (and the funnel's links and first-seen row) count for a new
  random pseudonym (``erased:…``) instead of the account, with no user id, and the
  anonymous ids they signed in with are no longer linked: every figure (dashboard,
  funnel, retention) stays as it was, nothing leads back to the account.

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
from services.events.subscribers import DomainEvent, Subscriber
from services.notifications.repository import NotificationRepository

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
    log.info(
        "account erased",
        extra={"user": user_id, "notifications": notifications, "analytics_events": events},
    )
