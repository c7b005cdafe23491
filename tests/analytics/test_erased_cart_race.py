"""An account erased while its cart's ``add_to_cart`` event is being written: once the
erasure is acknowledged and its ``account_erasure`` ran, no event names the account.
The cart's add is held after the recorder read the account (as active), the account is
erased and ``user.deleted`` handled, the add let go.

The recorder's read of the account took no lock, on the ground that the caller holds a
row the erasure rewrites (an order's): a cart's is not one, so the erasure committed at
once, its ``account_erasure`` found the event not yet written, and the add then wrote
it with the account's id, for good (the rollup leaves events written before the erasure
to its subscriber). Now the cart's event holds the account (``hold_account``) to its
commit: the erasure waits for it, and ``account_erasure`` then moves it to the
pseudonym."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import create_session_factory, transaction
from core.settings import Settings
from models.analytics import AnalyticsEvent
from services.analytics import AnalyticsRecorder, AnalyticsRepository
from services.carts import CartService
from tests.events.erasure_race import (
    Hold,
    customer_with_cart,
    delete_account,
    erase_while_held,
)
from tests.events.test_erasure_notification_race import _handle_user_deleted


async def test_a_cart_event_being_written_at_an_erasure_names_no_one(
    engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = create_session_factory(engine)
    user, product, owned = await customer_with_cart(sessions, settings, "cart-race")
    paused = Hold()
    erased_accounts = AnalyticsRepository.erased_accounts

    async def held_read(
        self: AnalyticsRepository, user_ids: list[str], *, hold: bool = False
    ) -> set[str]:
        found = await erased_accounts(self, user_ids, hold=hold)
        await paused.point()  # the account was read as active; the event not yet written
        return found

    monkeypatch.setattr(AnalyticsRepository, "erased_accounts", held_read)

    async def add_to_cart() -> None:
        async with transaction(sessions) as session:
            carts = CartService(session, settings, AnalyticsRecorder(True))
            mine = await carts.find(user.id, None)
            assert mine is not None
            assert mine.cart.id == owned.cart.id
            await carts.add(mine, product.id, 1)

    async def erase() -> None:
        await delete_account(sessions, user.id)
        await _handle_user_deleted(sessions, user.id)

    await erase_while_held(engine, paused, add_to_cart, erase)
    async with sessions() as session:
        rows = await session.exec(
            select(AnalyticsEvent.user_id, AnalyticsEvent.person_id).where(
                col(AnalyticsEvent.event) == "add_to_cart",
                col(AnalyticsEvent.properties)["productId"].astext == product.id,
            )
        )
        written = list(rows.all())
    assert len(written) == 1  # written, and counted: for the erasure's pseudonym
    (user_id, person_id) = written[0]
    assert user_id is None
    assert person_id != user.id
