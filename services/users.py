"""Users: registration, profiles, roles, deletion. All user SQL is in ``UserRepository``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic.networks import validate_email
from sqlalchemy import Select as CoreSelect
from sqlalchemy import bindparam, delete, func
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from core.db import first_row, locked
from core.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from core.events import EventType
from core.outbox import publish
from models.base import utcnow
from models.users import Address, Role, User, UserCreate, UserStatus, UserUpdate
from services import passwords
from services.analytics import AnalyticsRecorder
from services.email import EmailMessageRepository
from services.order_repository import OrderRepository
from services.workflow_starts import WorkflowStartRepository


def normalize_email(email: str) -> str:
    """The form an address is stored, looked up and throttled under: what registration's
    ``EmailStr`` makes of it (Unicode NFC, the domain's IDNA form in Unicode), trimmed and
    lower-cased. Sign-in takes the address as typed: normalised only by case, the
    spelling someone registered with (decomposed accents, ``xn--`` domain) found no
    account, and each spelling counted its failed sign-ins apart."""
    email = email.strip()
    with contextlib.suppress(ValueError):  # not one registration takes: no account has it
        _, email = validate_email(email)
    return email.lower()


ERASED_NAME = "Deleted user"
# What an event's payload says of the person, replaced once their account is erased.
PERSONAL_KEYS = ("email", "name")


def erased_email(user_id: str) -> str:
    """The address an erased account (and its orders and email ledger) keeps: unique,
    undeliverable (``.invalid``), naming no one."""
    return f"deleted+{user_id.lower()}@users.invalid"


def without_person(data: dict[str, Any]) -> dict[str, Any]:
    """An event's ``data`` about an erased account's ``userId``, its email and name
    replaced by the erased account's."""
    user_id = str(data.get("userId") or "")
    erased = {"email": erased_email(user_id), "name": ERASED_NAME}
    return data | {k: erased[k] for k in PERSONAL_KEYS if k in data}


@dataclass(frozen=True)
class Contact:
    """An active account's address and name (``UserRepository.hold_contact``)."""

    email: str
    name: str


class EmailTaken(Conflict):
    code = "email_taken"
    title = "That email address is already registered"


class UserNotFound(NotFound):
    code = "user_not_found"
    title = "No such user"


class AccountDeleted(Unauthenticated):
    """A signed-in caller whose account was erased (its access token still valid for
    up to its 15 minutes), or was erased while its request ran."""

    code = "account_deleted"
    title = "This account no longer exists"


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: str) -> User | None:
        user = await self.session.get(User, user_id)
        return user if user is not None and user.status == UserStatus.ACTIVE else None

    async def lock(self, user_id: str) -> User | None:
        """The active account's row, locked to the commit (``FOR NO KEY UPDATE``: rows
        that reference it may still be written): what serialises changes counted per
        account, such as its address book's size. None for no account or a deleted one
        (a deletion that committed first is seen: the lock reads the row as committed).
        It waits for every ``hold``: an erasure takes it first."""
        result = await self.session.exec(
            locked(
                select(User).where(User.id == user_id, User.status == UserStatus.ACTIVE),
                key_share=True,
            )
        )
        return result.first()

    @staticmethod
    @cache
    def _hold_statement() -> SelectOfScalar[User]:
        """``hold``'s statement, taken by several of an order's emails and event
        handlers: built once (issue #15, as ``OrderRepository``'s order by id)."""
        return locked(
            select(User).where(User.id == bindparam("p_user_id"), User.status == UserStatus.ACTIVE),
            read=True,
        )

    async def hold(self, user_id: str) -> User | None:
        """The active account, its row share-locked (``FOR SHARE``) until the transaction
        ends: what an email to the person is handed to the provider under, a
        notification for them written under, and their marketing and CRM contacts
        upserted under. An erasure ``lock``s the row before it rewrites any address, so
        it waits for the work under a hold to settle, and a hold asked for meanwhile
        waits for the erasure and finds the account closed: once an erasure is
        acknowledged, nothing more goes to the address nor is written for the person
        (what was written before, its ``user.deleted`` subscribers erase). Rows
        referencing the account may still be written meanwhile (no foreign key waits
        for an email). None for no account or a deleted one."""
        result = await self.session.exec(self._hold_statement(), params={"p_user_id": user_id})
        return result.first()

    @staticmethod
    @cache
    def _hold_contact_statement() -> CoreSelect[str, str]:
        users = User.__table__  # type: ignore[attr-defined]
        return locked(
            core_select(users.c.email, users.c.name).where(
                users.c.id == bindparam("p_user_id"), users.c.status == UserStatus.ACTIVE
            ),
            read=True,
        )

    async def hold_contact(self, user_id: str) -> Contact | None:
        """``hold`` (the same lock, to the same end) for a caller that reads only the
        account's address and name, an email's recipient: without loading the account, a
        Core statement built once on the session's connection, not the ORM's execute path
        (issue #15: an order's confirmation reads it). Nothing staged is flushed first."""
        found = await first_row(
            self.session, self._hold_contact_statement(), {"p_user_id": user_id}
        )
        return None if found is None else Contact(email=found[0], name=found[1])

    async def by_email(self, email: str) -> User | None:
        result = await self.session.exec(
            select(User).where(User.email == normalize_email(email), User.status == "active")
        )
        return result.first()

    async def email_in_use(self, email: str, *, except_user: str | None = None) -> bool:
        query = select(User.id).where(User.email == normalize_email(email))
        if except_user:
            query = query.where(User.id != except_user)
        return (await self.session.exec(query)).first() is not None

    async def save(self, user: User) -> User:
        """Insert or update, flushed now: ``EmailTaken`` if the email's unique index
        refuses it."""
        self.session.add(user)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            # Two requests racing for one address: the unique index decides.
            raise EmailTaken(f"{user.email} is already registered", field="email") from exc
        return user

    async def list(self, *, offset: int, limit: int, role: Role | None) -> tuple[list[User], int]:
        query = select(User).where(User.status == "active")
        count = select(func.count()).select_from(User).where(User.status == "active")
        if role is not None:
            query = query.where(User.role == role)
            count = count.where(User.role == role)
        rows = await self.session.exec(
            query.order_by(col(User.created_at).desc(), col(User.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = (await self.session.exec(count)).one()
        return list(rows.all()), int(total)

    async def erased(self, user_id: str) -> bool:
        """Whether the account was deleted (anonymised)."""
        status = await self.session.exec(select(User.status).where(User.id == user_id))
        return status.first() == UserStatus.DELETED

    async def delete_addresses(self, user_id: str) -> None:
        await self.session.exec(delete(Address).where(col(Address.user_id) == user_id))


@dataclass(frozen=True)
class RegistrationContext:
    user_agent: str | None
    method: str = "email"


class UserService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        analytics: AnalyticsRecorder,
        password_min_length: int,
    ) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.analytics = analytics
        self.password_min_length = password_min_length

    async def register(
        self, data: UserCreate, context: RegistrationContext, *, role: Role = Role.CUSTOMER
    ) -> User:
        """The seed's createUser: validate, hash, create, track analytics; the caller
        commits, then the welcome email workflow starts (``services.onboarding``)."""
        email = normalize_email(str(data.email))
        passwords.check_policy(
            data.password, min_length=self.password_min_length, email=email, name=data.name
        )
        if await self.users.email_in_use(email):
            raise EmailTaken(f"{email} is already registered", field="email")
        user = User(
            email=email,
            name=data.name,
            password_hash=await passwords.hash_password(data.password),
            role=role,
            status=UserStatus.ACTIVE,
            password_changed_at=utcnow(),
        )
        await self.users.save(user)
        await publish(
            self.session,
            EventType.USER_CREATED,
            user.id,
            {"userId": user.id, "email": user.email, "name": user.name, "role": str(role)},
        )
        await self.analytics.track(
            self.session,
            "user_created",
            user_id=user.id,
            properties={"registrationMethod": context.method, "userAgent": context.user_agent},
        )
        return user

    async def get(self, user_id: str) -> User:
        user = await self.users.get(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return user

    async def update(self, user: User, data: UserUpdate) -> tuple[User, bool]:
        """Apply the fields given; returns the user and whether the password changed.

        The row is locked first (``lock``, which re-reads it into ``user``): a change
        read before an erasure committed wrote the name and email it was given over the
        erased ones, and a current password is checked against the hash as it is now."""
        if await self.users.lock(user.id) is None:
            raise UserNotFound(f"user {user.id} was deleted meanwhile")
        changes = data.model_dump(exclude_unset=True)
        password_changed = False
        if "email" in changes and changes["email"] is not None:
            email = normalize_email(str(changes["email"]))
            if email != user.email:
                if await self.users.email_in_use(email, except_user=user.id):
                    raise EmailTaken(f"{email} is already registered", field="email")
                user.email = email
        if changes.get("name") is not None:
            user.name = changes["name"]
        if changes.get("password") is not None:
            # Not 401: the caller is signed in, and a client reads 401 as "sign out".
            current = changes.get("current_password")
            if not current:
                raise ValidationFailed(
                    "changing the password needs currentPassword",
                    code="current_password_required",
                    field="currentPassword",
                )
            if not await passwords.verify_password(user.password_hash, current):
                raise Forbidden(
                    "currentPassword does not match the account's password",
                    code="current_password_invalid",
                    field="currentPassword",
                )
            passwords.check_policy(
                changes["password"],
                min_length=self.password_min_length,
                email=user.email,
                name=user.name,
            )
            user.password_hash = await passwords.hash_password(changes["password"])
            user.password_changed_at = utcnow()
            password_changed = True
        user.updated_at = utcnow()
        await self.users.save(user)
        return user, password_changed

    async def delete(self, user: User) -> None:
        """Anonymise the person; keep the account row (orders refer to it).

        The row is locked first (``lock``): an email handed to the provider under a
        ``hold`` settles before anything is rewritten, and none is sent after. First,
        too, because a send's ledger row (rewritten below) is written while its hold is
        kept: rewriting it before waiting for the hold would wait in a circle. The
        caller closes the account's cart after this (``cart_reminders.account_deleted``):
        the account's row, then its orders' (and its recorded workflow starts', which
        nothing locks while waiting for another of the person's rows), then its cart's
        (``core.db.locked``)."""
        if await self.users.lock(user.id) is None:
            raise UserNotFound(f"user {user.id} was deleted meanwhile")
        now = utcnow()
        erased = erased_email(user.id)
        # Orders are kept (accounting) without the address to reach the person, and the
        # email ledger without the addresses it wrote to: read by address, so before the
        # account's goes. The rest is erased by the relay's subscribers of user.deleted
        # (``handlers/erasure.py``, ``handlers/webhooks.py``, CRM, marketing).
        ledger = EmailMessageRepository(self.session)
        ordered_with = await OrderRepository(self.session).erase_email(user.id, erased)
        for address in {user.email, *ordered_with}:
            await ledger.erase_recipient(address, erased)
        # Recorded workflow starts whose input names the account (the welcome's, a
        # reminder's, written before they stopped carrying the person) lose its email
        # and name: kept until pruned (``WORKFLOW_START_RETENTION_DAYS``), owed ones too.
        await WorkflowStartRepository(self.session).blank_personal(user.id, PERSONAL_KEYS)
        user.email = erased
        user.name = ERASED_NAME
        user.password_hash = passwords.UNUSABLE_PASSWORD_HASH
        user.status = UserStatus.DELETED
        user.deleted_at = now
        user.updated_at = now
        await self.users.save(user)
        await self.users.delete_addresses(user.id)
        await publish(self.session, EventType.USER_DELETED, user.id, {"userId": user.id})

    async def list(
        self, *, page: int, limit: int, role: Role | None = None
    ) -> tuple[list[User], int]:
        return await self.users.list(offset=(page - 1) * limit, limit=limit, role=role)
