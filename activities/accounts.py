"""Account lookups for workflows that write to people later (the address may change)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from core.db import SessionFactory
from services.users import UserRepository


class ContactInput(BaseModel):
    user_id: str


class Contact(BaseModel):
    active: bool
    email: str | None = None
    name: str | None = None


class AccountActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn(name="accounts.contact")
    async def contact(self, input: ContactInput) -> Contact:
        """The user's current address and name; inactive once the account is deleted."""
        async with self._sessions() as session:
            user = await UserRepository(session).get(input.user_id)
        if user is None:
            return Contact(active=False)
        return Contact(active=True, email=user.email, name=user.name)
