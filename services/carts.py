"""Carts: who owns one, what is in it, what it costs now, and merging at sign-in.

Totals are always computed from current prices; each line says whether its price moved
since it was added. Quantities are checked against available stock when they change.

A signed-in shopper's cart is locked after their account is held (``hold_owner``): the
one lock order of ``core.db.locked``, which checkout, sign-in and the erasure follow too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, NotFound, ValidationFailed
from core.settings import Settings
from models.base import utcnow
from models.carts import Cart, CartItem, CartPublic, CartStatus
from models.catalog import Product
from models.quotes import Destination, Quote
from services.analytics import AnalyticsRecorder
from services.cart_repository import CartRepository
from services.cart_view import render_cart
from services.catalog.coupons import CouponService
from services.catalog.errors import ProductNotFound
from services.catalog.pricing import price_book
from services.catalog.product_repository import ProductRepository
from services.inventory import OutOfStock, StockRepository
from services.order_repository import OrderRepository
from services.quotes import quote
from services.users import AccountDeleted, UserRepository


class CartItemNotFound(NotFound):
    code = "cart_item_not_found"
    title = "That product is not in the cart"


class CartInCheckout(Conflict):
    code = "cart_in_checkout"
    title = "An order is being placed from this cart"


@dataclass(frozen=True)
class OwnedCart:
    cart: Cart
    token: str | None  # only for guest carts


class CartService:
    def __init__(
        self, session: AsyncSession, settings: Settings, analytics: AnalyticsRecorder
    ) -> None:
        self.session = session
        self.settings = settings
        self.analytics = analytics
        self.carts = CartRepository(session)
        self.stock = StockRepository(session)
        self.products = ProductRepository(session)

    async def hold_owner(self, user_id: str) -> None:
        """Share-lock the account (``UserRepository.hold``) before its cart's row, as
        checkout does and the erasure (the account, then the cart it closes) and a
        sign-in that rehashes (the account, written, then the carts it merges) take
        them; an account erased meanwhile answers ``AccountDeleted``, as checkout does.
        The other order deadlocked with the erasure, the cart's ``add_to_cart`` event
        holding the account after its cart."""
        if await UserRepository(self.session).hold(user_id) is None:
            raise AccountDeleted(f"account {user_id} was deleted")

    async def find(self, user_id: str | None, token: str | None) -> OwnedCart | None:
        if user_id is not None:
            await self.hold_owner(user_id)
            cart = await self.carts.active_for_user(user_id, lock=True)
            return OwnedCart(cart, None) if cart else None
        if token:
            cart = await self.carts.active_for_token(token, lock=True)
            return OwnedCart(cart, token) if cart else None
        return None

    async def find_or_create(self, user_id: str | None, token: str | None) -> OwnedCart:
        found = await self.find(user_id, token)
        if found is not None:
            return found
        cart, new = await self.carts.create(user_id)
        return OwnedCart(cart, None if user_id else new)

    async def _in_checkout(self, cart: Cart) -> str | None:
        """The order being placed from ``cart``, if any (priced, maybe paid, not yet
        confirmed: create-order then closes the cart)."""
        order = await OrderRepository(self.session).live_for_cart(cart.id)
        return order.id if order is not None else None

    async def _editable(self, cart: Cart) -> None:
        """A cart whose order is being placed is not changed (the caller holds its lock,
        as ``Checkout.place`` does): create-order closes it, so a line added meanwhile
        was neither ordered nor kept, and a coupon or line changed was not what the
        order was priced with."""
        order_id = await self._in_checkout(cart)
        if order_id is not None:
            raise CartInCheckout(
                f"order {order_id} is being placed from this cart: wait for it, or cancel "
                "it, to change the cart",
                orderId=order_id,
            )

    async def _product(self, product_id: str) -> Product:
        product = (await self.products.by_ids([product_id])).get(product_id)
        if product is None or product.deleted_at is not None:
            raise ProductNotFound(f"no product {product_id}")
        if not product.active:
            raise ValidationFailed(
                f"{product_id} is not for sale", code="product_inactive", field="productId"
            )
        return product

    async def _check_quantity(self, product_id: str, quantity: int) -> None:
        limit = self.settings.cart_max_line_quantity
        if quantity > limit:
            raise ValidationFailed(
                f"at most {limit} of one product per cart", code="quantity_limit", field="quantity"
            )
        available = (await self.stock.available([product_id]))[product_id]
        if quantity > available:
            raise OutOfStock(
                f"only {available} available",
                available=available,
                unavailableItems=[
                    {"productId": product_id, "requested": quantity, "available": available}
                ],
            )

    async def add(self, owned: OwnedCart, product_id: str, quantity: int) -> None:
        cart = owned.cart
        await self._editable(owned.cart)
        product = await self._product(product_id)
        if product.currency != cart.currency:
            # Its price is in another currency's minor units: read as the cart's, 1500
            # yen were 15.00 USD.
            raise ValidationFailed(
                f"{product_id} is priced in {product.currency}, the cart in {cart.currency}",
                code="currency_mismatch",
                field="productId",
                productCurrency=product.currency,
                cartCurrency=cart.currency,
            )
        existing = await self.carts.item(cart.id, product_id)
        wanted = quantity + (existing.quantity if existing else 0)
        await self._check_quantity(product_id, wanted)
        if existing is not None:
            existing.quantity = wanted
            existing.updated_at = utcnow()
            self.carts.stage(existing)
        else:
            if len(await self.carts.items(cart.id)) >= self.settings.cart_max_lines:
                raise ValidationFailed("the cart is full", code="cart_full")
            prices = await price_book(self.session)
            self.carts.stage(
                CartItem(
                    cart_id=cart.id,
                    product_id=product_id,
                    quantity=wanted,
                    unit_price_at_add=prices.effective_price(product),
                )
            )
        await self.analytics.track(
            self.session,
            "add_to_cart",
            user_id=cart.user_id,
            session_id=cart.id,
            properties={"productId": product_id, "quantity": quantity, "price": product.price},
            # The account is held before the cart (``hold_owner``): what makes an erasure
            # wait for this event, which its subscriber must see to erase. Held again
            # here at no wait, for a caller that locked the cart some other way.
            hold_account=True,
        )
        await self.carts.touch(cart.id)

    async def set_quantity(self, owned: OwnedCart, product_id: str, quantity: int) -> None:
        await self._editable(owned.cart)
        item = await self.carts.item(owned.cart.id, product_id)
        if item is None:
            raise CartItemNotFound(f"{product_id} is not in the cart")
        if quantity > item.quantity or quantity > self.settings.cart_max_line_quantity:
            await self._check_quantity(product_id, quantity)
        item.quantity = quantity
        item.updated_at = utcnow()
        self.carts.stage(item)
        await self.carts.touch(owned.cart.id)

    async def remove(self, owned: OwnedCart, product_id: str) -> None:
        await self._editable(owned.cart)
        if not await self.carts.remove_item(owned.cart.id, product_id):
            raise CartItemNotFound(f"{product_id} is not in the cart")
        await self.carts.touch(owned.cart.id)

    async def clear(self, owned: OwnedCart) -> None:
        await self._editable(owned.cart)
        await self.carts.clear(owned.cart.id)
        owned.cart.coupon_code = None
        owned.cart.updated_at = utcnow()
        await self.carts.save(owned.cart)

    async def apply_coupon(self, owned: OwnedCart, code: str) -> None:
        await self._editable(owned.cart)
        priced = await self.quote(owned.cart)
        verdict = await CouponService(self.session).check(
            code, priced.discounted_subtotal, owned.cart.currency, owned.cart.user_id
        )
        if not verdict.valid:
            raise ValidationFailed(
                verdict.detail or "the coupon does not apply",
                code="coupon_not_applicable",
                reason=verdict.reason,
                field="code",
            )
        owned.cart.coupon_code = verdict.code
        owned.cart.updated_at = utcnow()
        await self.carts.save(owned.cart)

    async def remove_coupon(self, owned: OwnedCart) -> None:
        await self._editable(owned.cart)
        owned.cart.coupon_code = None
        await self.carts.save(owned.cart)

    async def quote(self, cart: Cart, destination: Destination | None = None) -> Quote:
        """What ``cart`` costs now (sent to ``destination``): see ``services.quotes``."""
        return await quote(
            self.session, self.settings, cart, await self.carts.items(cart.id), destination
        )

    async def view(self, owned: OwnedCart, destination: Destination | None = None) -> CartPublic:
        """The cart's JSON, rendered from its ``Quote`` (``services.cart_view``)."""
        cart = owned.cart
        items = await self.carts.items(cart.id)
        priced = await quote(self.session, self.settings, cart, items, destination)
        products = [i.product_id for i in items]
        available = await self.stock.available(products) if items else {}
        return render_cart(cart, owned.token, items, priced, available)

    async def absorb(self, source_cart_id: str, target: OwnedCart) -> None:
        """Add another cart's lines to ``target``: quantities add up, capped by available
        stock and the per-line maximum."""
        await self._editable(target.cart)
        mine = {i.product_id: i for i in await self.carts.items(target.cart.id)}
        incoming = await self.carts.items(source_cart_id)
        available = await self.stock.available([i.product_id for i in incoming]) if incoming else {}
        limit = self.settings.cart_max_line_quantity
        for item in incoming:
            current = mine.get(item.product_id)
            wanted = item.quantity + (current.quantity if current else 0)
            capped = min(wanted, limit, available.get(item.product_id, 0))
            if current is not None:
                # Never below what the shopper already had, never above the cap.
                current.quantity = max(current.quantity, capped)
                self.carts.stage(current)
            elif capped > 0:
                self.carts.stage(
                    CartItem(
                        cart_id=target.cart.id,
                        product_id=item.product_id,
                        quantity=capped,
                        unit_price_at_add=item.unit_price_at_add,
                    )
                )
        await self.carts.touch(target.cart.id)

    async def merge_guest_cart(self, token: str, user_id: str) -> str | None:
        """At sign-in: the guest cart joins the user's cart and is closed. Returns the
        guest cart's id (None if there was none). The account is held before either cart
        is locked (``hold_owner``; the sign-in has locked it already, ``authenticate``)."""
        await self.hold_owner(user_id)
        guest = await self.carts.active_for_token(token, lock=True)
        if guest is None:
            return None
        owned = await self.find_or_create(user_id, None)
        if await self._in_checkout(owned.cart) is not None:
            return None  # the guest cart stays as it is, to merge at a later sign-in
        await self.absorb(guest.id, owned)
        if guest.coupon_code and not owned.cart.coupon_code:
            owned.cart.coupon_code = guest.coupon_code
            self.carts.stage(owned.cart)
        guest.status = CartStatus.MERGED
        await self.carts.save(guest)
        return guest.id
