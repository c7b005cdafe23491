"""Share links to a cart: read-only views, copying into one's own cart, shared edits."""

from __future__ import annotations

import secrets

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Forbidden, NotFound
from models.base import utcnow
from models.carts import CartShare, CartStatus, SharedCartView
from services.cart_repository import CartRepository, hash_token
from services.carts import CartService, OwnedCart
from services.users import UserRepository


class ShareNotFound(NotFound):
    code = "share_not_found"
    title = "No such share link (or it was revoked)"


class CartShareRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, share: CartShare) -> CartShare:
        self.session.add(share)
        await self.session.flush()
        return share

    async def live(self, token: str) -> CartShare | None:
        result = await self.session.exec(
            select(CartShare).where(
                CartShare.token_hash == hash_token(token), col(CartShare.revoked_at).is_(None)
            )
        )
        return result.first()

    async def revoke(self, cart_id: str, share_id: str) -> bool:
        """Revoke a live share of ``cart_id``; False if there is none."""
        result = await self.session.exec(
            update(CartShare)
            .where(
                col(CartShare.id) == share_id,
                col(CartShare.cart_id) == cart_id,
                col(CartShare.revoked_at).is_(None),
            )
            .values(revoked_at=utcnow())
            .returning(col(CartShare.id))
        )
        return result.first() is not None


class CartShares:
    """Share links: read-only views, copying into one's own cart, optional shared edits."""

    def __init__(self, service: CartService) -> None:
        self.service = service
        self.shares = CartShareRepository(service.session)
        self.carts = CartRepository(service.session)

    async def create(self, owned: OwnedCart, can_edit: bool) -> tuple[CartShare, str]:
        token = "cs_" + secrets.token_urlsafe(24)
        share = await self.shares.add(
            CartShare(cart_id=owned.cart.id, token_hash=hash_token(token), can_edit=can_edit)
        )
        return share, token

    async def revoke(self, owned: OwnedCart, share_id: str) -> None:
        if not await self.shares.revoke(owned.cart.id, share_id):
            raise ShareNotFound(f"no live share {share_id} on this cart")

    async def resolve(self, token: str, *, lock: bool = False) -> tuple[CartShare, OwnedCart]:
        share = await self.shares.live(token)
        cart = await self.carts.get(share.cart_id) if share is not None else None
        if lock and cart is not None:
            # Edits serialise on the cart row, like the owner's own edits, locked after
            # the owner's account is held (the one lock order, ``core.db.locked``): an
            # erasure of the owner (the account, then the cart it closes) waits for the
            # edit, or closed the cart first.
            if cart.user_id is not None:
                await UserRepository(self.service.session).hold(cart.user_id)
            cart = await self.carts.get(cart.id, lock=True)
        if share is None or cart is None or cart.status != CartStatus.ACTIVE:
            raise ShareNotFound("this share link does not exist or was revoked")
        return share, OwnedCart(cart, None)

    async def view(self, token: str) -> SharedCartView:
        share, owned = await self.resolve(token)
        full = await self.service.view(owned)
        return SharedCartView(
            items=full.items, totals=full.totals, currency=full.currency, can_edit=share.can_edit
        )

    async def copy_into(self, token: str, target: OwnedCart) -> None:
        """Add the shared cart's lines to ``target``, capped by stock and line maximum."""
        _, source = await self.resolve(token)
        if source.cart.id == target.cart.id:
            return
        await self.service.absorb(source.cart.id, target)

    async def add_as_editor(self, token: str, product_id: str, quantity: int) -> OwnedCart:
        share, owned = await self.resolve(token, lock=True)
        if not share.can_edit:
            raise Forbidden("this share link is read-only", code="share_read_only")
        await self.service.add(owned, product_id, quantity)
        return owned
