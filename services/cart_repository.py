"""The carts' SQL: a shopper's active cart found by account or by guest token (its
SHA-256 is stored, not the token), created, its lines read and written, closed."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.carts import Cart, CartItem, CartStatus

TOKEN_PREFIX = "ct_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


class CartRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_for_user(self, user_id: str, *, lock: bool = False) -> Cart | None:
        query = select(Cart).where(Cart.user_id == user_id, Cart.status == CartStatus.ACTIVE)
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()

    async def active_for_token(self, token: str, *, lock: bool = False) -> Cart | None:
        query = select(Cart).where(
            Cart.token_hash == hash_token(token),
            Cart.status == CartStatus.ACTIVE,
            col(Cart.user_id).is_(None),
        )
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()

    async def create(self, user_id: str | None) -> tuple[Cart, str]:
        token = new_token()
        if user_id is not None:
            # Two first requests of one user racing: the partial unique index lets one
            # insert win; the other reads the winner's cart.
            await self.session.exec(
                pg_insert(Cart)
                .values(
                    id=new_id(IdPrefix.CART),
                    user_id=user_id,
                    token_hash=hash_token(token),
                    status=CartStatus.ACTIVE,
                    currency="USD",
                )
                .on_conflict_do_nothing()
            )
            cart = await self.active_for_user(user_id, lock=True)
            assert cart is not None
            return cart, token
        cart = Cart(user_id=None, token_hash=hash_token(token), status=CartStatus.ACTIVE)
        await self.save(cart)
        return cart, token

    async def get(self, cart_id: str, *, lock: bool = False) -> Cart | None:
        query = select(Cart).where(Cart.id == cart_id)
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()

    async def items(self, cart_id: str) -> list[CartItem]:
        result = await self.session.exec(
            select(CartItem)
            .where(CartItem.cart_id == cart_id)
            .order_by(col(CartItem.created_at), col(CartItem.id))
        )
        return list(result.all())

    async def item(self, cart_id: str, product_id: str) -> CartItem | None:
        result = await self.session.exec(
            select(CartItem).where(CartItem.cart_id == cart_id, CartItem.product_id == product_id)
        )
        return result.first()

    async def touch(self, cart_id: str) -> None:
        """Stamp the cart as changed now and flush what was staged with it."""
        await self.session.exec(
            update(Cart).where(col(Cart.id) == cart_id).values(updated_at=utcnow())
        )
        await self.session.flush()

    def stage(self, row: Cart | CartItem) -> None:
        """Insert or update ``row`` at the next flush (``touch`` or ``save``)."""
        self.session.add(row)

    async def save(self, row: Cart | CartItem) -> None:
        """Insert or update ``row``, with whatever is staged, flushed now."""
        self.session.add(row)
        await self.session.flush()

    async def remove_item(self, cart_id: str, product_id: str) -> bool:
        result = await self.session.exec(
            delete(CartItem)
            .where(col(CartItem.cart_id) == cart_id, col(CartItem.product_id) == product_id)
            .returning(col(CartItem.id))
        )
        return result.first() is not None

    async def clear(self, cart_id: str) -> None:
        await self.session.exec(delete(CartItem).where(col(CartItem.cart_id) == cart_id))

    async def close_active_for_user(self, user_id: str) -> str | None:
        """Close the user's active cart (the account is deleted); its id, if any."""
        cart = await self.active_for_user(user_id, lock=True)
        if cart is None:
            return None
        cart.status = CartStatus.CLOSED
        self.stage(cart)
        return cart.id
