"""An account erased while one of its orders is being placed: once the erasure is
acknowledged, no order of the account holds its email.

The placement is held after it locked the cart (the caller's account read as active by
the request's sign-in, before), the account is erased, the placement let go.

Checkout took no lock on the account (the order's foreign key takes ``FOR KEY SHARE``,
which the erasure's ``FOR NO KEY UPDATE`` does not wait for): the erasure committed at
once, erasing the email of the orders it found, and the placement then wrote its order
with the address the sign-in had read, for good. Now checkout holds the account
(``UserRepository.hold``) from its start to its commit: the erasure waits for the order
and erases its email with the others'; a placement after the erasure is refused.
"""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import SessionFactory, create_session_factory, transaction
from core.settings import Settings
from models.order_api import OrderCreate
from models.orders import Order
from models.users import User
from services.analytics import AnalyticsRecorder
from services.cart_repository import CartRepository
from services.carts import CartService
from services.checkout import Checkout
from services.orders import OrderService
from services.users import AccountDeleted, erased_email
from tests.events.erasure_race import (
    Hold,
    customer_with_cart,
    delete_account,
    erase_while_held,
)
from tests.orders.helpers import order_body


async def _customer_with_cart(sessions: SessionFactory, settings: Settings) -> tuple[User, str]:
    """An active account with a one-mug cart, and the cart's id."""
    user, product, owned = await customer_with_cart(sessions, settings, "checkout-race")
    async with transaction(sessions) as session:
        await CartService(session, settings, AnalyticsRecorder(False)).add(owned, product.id, 1)
    return user, owned.cart.id


async def _orders_of(sessions: SessionFactory, user_id: str) -> list[Order]:
    async with sessions() as session:
        rows = await session.exec(select(Order).where(col(Order.user_id) == user_id))
        return list(rows.all())


async def test_an_order_being_placed_at_an_erasure_keeps_no_email(
    engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = create_session_factory(engine)
    user, cart_id = await _customer_with_cart(sessions, settings)
    async with sessions() as session:
        signed_in = await session.get(User, user.id)  # the request's sign-in: active
    assert signed_in is not None
    paused = Hold()
    get_cart = CartRepository.get

    async def held_get(self: CartRepository, cart_id: str, *, lock: bool = False) -> object:
        found = await get_cart(self, cart_id, lock=lock)
        await paused.point()  # the cart is locked; the order not yet written
        return found

    monkeypatch.setattr(CartRepository, "get", held_get)
    body = OrderCreate.model_validate(order_body(cart_id))

    async def place() -> None:
        async with transaction(sessions) as session:
            await Checkout(session, settings).place(signed_in, body)

    await erase_while_held(engine, paused, place, lambda: delete_account(sessions, user.id))
    orders = await _orders_of(sessions, user.id)
    assert len(orders) == 1  # placed, before the erasure that waited for it
    assert orders[0].email == erased_email(user.id)


async def test_an_order_placed_after_an_erasure_is_refused(
    engine: AsyncEngine, settings: Settings
) -> None:
    sessions = create_session_factory(engine)
    user, cart_id = await _customer_with_cart(sessions, settings)
    async with sessions() as session:
        signed_in = await session.get(User, user.id)  # read as active before the erasure
    assert signed_in is not None
    await delete_account(sessions, user.id)
    body = OrderCreate.model_validate(order_body(cart_id))
    with pytest.raises(AccountDeleted):
        async with transaction(sessions) as session:
            await Checkout(session, settings).place(signed_in, body)
    assert await _orders_of(sessions, user.id) == []


async def test_the_workflows_copy_of_an_order_names_no_one(
    engine: AsyncEngine, settings: Settings
) -> None:
    """validate-order's ``OrderSnapshot`` is the activity's result, kept in the workflow's
    history (until the namespace's retention) where no erasure reaches: it carries the
    account's id, never its email or name (the order's emails read those when sent)."""
    sessions = create_session_factory(engine)
    user, cart_id = await _customer_with_cart(sessions, settings)
    body = OrderCreate.model_validate(order_body(cart_id))
    async with transaction(sessions) as session:
        order, _ = await Checkout(session, settings).place(user, body)
    for _ in range(2):  # the first pricing, and a repeat of it
        async with transaction(sessions) as session:
            service = OrderService(session, settings, AnalyticsRecorder(False))
            snapshot = await service.price(order.id)
        assert snapshot.user_id == user.id
        assert (snapshot.email, snapshot.name) == ("", "")
        assert user.email not in snapshot.model_dump_json()
        assert user.name not in snapshot.model_dump_json()
