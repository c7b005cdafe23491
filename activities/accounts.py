"""Account lookups for workflows that write to people later (the address may change)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from core.db import SessionFactory
from models.carts import CartStatus
from services.cart_repository import CartRepository
from services.users import UserRepository


class ContactInput(BaseModel):
    user_id: str
    # The cart a reminder would be about: is it still waiting to be checked out?
    cart_id: str | None = None
    # Whether to answer the address and name. The cart reminder asks not to: its email
    # step reads them when it sends, and an answer would keep them in the run's history
    # (an erased account's too). True in inputs of runs scheduled before it existed.
    # Not asked, they are answered empty (not None): a worker of the release before,
    # taking a run this one started, reads a None address as an erased account's and
    # sends nothing; with "" it hands the email step the account, which reads them.
    address: bool = True


class Contact(BaseModel):
    active: bool
    email: str | None = None
    name: str | None = None
    # False once the cart asked about was checked out (or closed, or merged).
    cart_active: bool = True


class AccountActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn(name="accounts.contact")
    async def contact(self, input: ContactInput) -> Contact:
        """The user's current address and name; inactive once the account is deleted;
        and whether the cart asked about is still active."""
        async with self._sessions() as session:
            user = await UserRepository(session).get(input.user_id)
            cart = None
            if input.cart_id is not None:
                cart = await CartRepository(session).get(input.cart_id)
        if user is None:
            return Contact(active=False)
        cart_active = input.cart_id is None or (
            cart is not None and cart.status == CartStatus.ACTIVE
        )
        if not input.address:
            return Contact(active=True, email="", name="", cart_active=cart_active)
        return Contact(active=True, email=user.email, name=user.name, cart_active=cart_active)
