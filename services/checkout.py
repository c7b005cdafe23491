"""Placing an order: the API's fast checks, the pending order row, and the workflow start.

The order row, its first timeline entry and the workflow start are one transaction; the
workflow is started after the commit (or by the relay if Temporal is briefly away), so a
placed order is never lost and never started twice. The cart row is locked while its
order is looked up, so one cart checked out twice concurrently yields one order.

The account is held (``UserRepository.hold``, ``FOR SHARE``) from the start to the
commit, before the cart is locked (the one lock order of ``core.db.locked``, which the
erasure, sign-in and cart changes follow too): an erasure committing meanwhile waits for
the order and then erases its email as it does older orders', and a placement reaching
the account after an erasure committed is refused as a deleted account's token is (401
``account_deleted``). The order's email and the address's default name are the held
row's, never the caller's read before it.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, NotFound
from core.settings import Settings
from models.carts import CartStatus
from models.order_api import OrderCreate
from models.orders import Order, OrderStatus, TimelineAudience
from models.users import User
from models.workflow_starts import WorkflowStart
from services.addresses import AddressService, clean_shipping_address
from services.cart_repository import CartRepository
from services.order_checks import CartEmpty
from services.order_repository import OrderRepository
from services.orders import PLACED_MESSAGE
from services.users import AccountDeleted, UserRepository
from temporal.clients.orders import OrderWorkflows
from workflows.types.orders import OrderInput, StepPolicy


class CartNotFound(NotFound):
    code = "cart_not_found"
    title = "No such cart"


def order_input(order: Order, settings: Settings) -> OrderInput:
    return OrderInput(
        order_id=order.id,
        user_id=order.user_id,
        steps=StepPolicy(
            attempts=settings.order_step_max_attempts,
            timeout_seconds=settings.order_step_timeout_seconds,
            heartbeat_seconds=settings.order_step_heartbeat_seconds,
        ),
        reservation_ttl_seconds=settings.reservation_ttl_seconds,
        action_timeout_seconds=settings.payment_action_timeout_seconds,
        authorize_timeout_seconds=settings.authorize_budget_seconds,
    )


class Checkout:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def place(self, user: User, body: OrderCreate) -> tuple[Order, WorkflowStart | None]:
        """A pending order for the caller's cart and its workflow start; for a cart that
        already has a live order, that order (and no new start)."""
        held = await UserRepository(self.session).hold(user.id)
        if held is None:
            raise AccountDeleted(f"account {user.id} was deleted")
        user = held
        carts = CartRepository(self.session)
        cart = await carts.get(body.cart_id, lock=True)
        if cart is None or cart.user_id != user.id:
            raise CartNotFound(f"no cart {body.cart_id}")
        orders = OrderRepository(self.session)
        existing = await orders.live_for_cart(cart.id)
        if existing is not None:
            return existing, None
        if cart.status != CartStatus.ACTIVE:
            raise Conflict(f"cart {cart.id} is {cart.status}", code="cart_not_active")
        if not await carts.items(cart.id):
            raise CartEmpty("there is nothing in the cart to order")
        if body.shipping_address_id is not None:
            saved = await AddressService(self.session).get(user.id, body.shipping_address_id)
            fields = {
                k: getattr(saved, k)
                for k in ("name", "street", "city", "state", "zip", "country", "phone")
            }
        else:
            assert body.shipping_address is not None
            fields = body.shipping_address.model_dump()
        fields["name"] = fields.get("name") or user.name
        order = Order(
            user_id=user.id,
            cart_id=cart.id,
            email=user.email,
            status=OrderStatus.PENDING,
            currency=cart.currency,
            shipping_address=clean_shipping_address(fields).model_dump(exclude_none=True),
            payment_method_type=body.payment_method.type,
            payment_token=body.payment_method.token,
            expected_total=body.expected_total,
        )
        await orders.save(order)
        # At the order's own time: ``OrderService.placed`` renders it without reading it.
        await orders.add_event(
            order.id,
            OrderStatus.PENDING,
            PLACED_MESSAGE,
            {},
            audience=TimelineAudience.CUSTOMER,
            at=order.created_at,
        )
        start = OrderWorkflows.request_start(self.session, order_input(order, self.settings))
        await self.session.flush()
        return order, start
