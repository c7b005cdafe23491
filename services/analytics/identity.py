"""Who a visitor turned out to be: at sign-in, an anonymous id (and a merged guest cart)
is linked to the user, so a funnel begun as a guest and finished signed in counts once."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from models.analytics import person_key
from services.analytics import AnalyticsRepository


class IdentityLinks:
    def __init__(self, session: AsyncSession) -> None:
        self.analytics = AnalyticsRepository(session)

    async def sign_in(
        self, user_id: str, *, anonymous_id: str | None, guest_cart_id: str | None
    ) -> int:
        """In the sign-in's transaction: remember the link (later events with that
        anonymous id count for the user), and give the user the events the anonymous id
        and the guest cart (whose events count for ``anon:<cart id>``) already have.
        Returns how many events moved."""
        if anonymous_id:
            await self.analytics.link(anonymous_id, user_id)
        people = [person_key(None, key, None, "") for key in (anonymous_id, guest_cart_id) if key]
        return await self.analytics.reassign(people, user_id)
