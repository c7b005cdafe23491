"""A user's address book. At most one default shipping and one default billing address."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.countries import is_country
from core.errors import Conflict, NotFound, ValidationFailed
from models.base import utcnow
from models.orders import ShippingAddress
from models.users import Address, AddressCreate, AddressUpdate
from services.users import UserNotFound, UserRepository

MAX_ADDRESSES_PER_USER = 50
# A US ZIP code: five digits, or ZIP+4. Other countries' postal codes are left as given.
US_ZIP = re.compile(r"\d{5}(?:-\d{4})?")


class AddressNotFound(NotFound):
    code = "address_not_found"
    title = "No such address"


class InvalidAddress(ValidationFailed):
    code = "invalid_address"
    title = "The address is not valid"


class AddressRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_for(self, user_id: str) -> list[Address]:
        result = await self.session.exec(
            select(Address)
            .where(Address.user_id == user_id)
            .order_by(col(Address.created_at), col(Address.id))
        )
        return list(result.all())

    async def count_for(self, user_id: str) -> int:
        counted = await self.session.exec(
            select(func.count()).select_from(Address).where(Address.user_id == user_id)
        )
        return int(counted.one())

    async def get(self, user_id: str, address_id: str) -> Address | None:
        result = await self.session.exec(
            select(Address).where(Address.id == address_id, Address.user_id == user_id)
        )
        return result.first()

    async def clear_default(self, user_id: str, flag: str, keep: str | None) -> None:
        column = getattr(Address, flag)
        query = update(Address).where(col(Address.user_id) == user_id, column.is_(True))
        if keep is not None:
            query = query.where(col(Address.id) != keep)
        await self.session.exec(query.values({flag: False, "updated_at": utcnow()}))

    async def delete(self, address: Address) -> None:
        await self.session.exec(delete(Address).where(col(Address.id) == address.id))

    async def save(self, address: Address) -> None:
        """Insert or update, flushed now (so a unique index speaks here)."""
        self.session.add(address)
        await self.session.flush()


def normalize_address(fields: dict[str, Any]) -> dict[str, Any]:
    for key in ("name", "street", "city", "state", "zip", "phone"):
        value = fields.get(key)
        if isinstance(value, str):
            value = " ".join(value.split())
            fields[key] = value or None
    for key in ("name", "street", "city", "zip"):
        if key in fields and not fields[key]:
            raise InvalidAddress(f"{key} must not be blank", field=key)
    if "country" in fields and fields["country"] is not None:
        country = str(fields["country"]).upper()
        if not is_country(country):
            raise InvalidAddress(
                f"{fields['country']!r} is not an ISO 3166-1 alpha-2 country code",
                field="country",
            )
        fields["country"] = country
    return fields


def check_whole_address(country: str, zip_code: str, state: str | None) -> None:
    """The rules across fields, one for the address book and checkout alike (a change of
    one field is checked with the others kept): a US address's ZIP code is five digits
    or ZIP+4, and it names its state (for tax; checkout refused one without, which the
    book once kept). Other countries' postal codes are theirs to format."""
    if country != "US":
        return
    if not US_ZIP.fullmatch(zip_code):
        raise InvalidAddress(
            f"{zip_code!r} is not a US ZIP code (five digits, or ZIP+4)", field="zip"
        )
    if not state:
        raise InvalidAddress("a US address needs a state", field="state")


def clean_shipping_address(fields: dict[str, Any]) -> ShippingAddress:
    """Where an order ships, by the address book's rules. Checkout's, and staff's when
    they correct a refused one."""
    address = normalize_address(fields)
    check_whole_address(address["country"], address["zip"], address.get("state"))
    return ShippingAddress.model_validate(address)


class AddressService:
    def __init__(self, session: AsyncSession) -> None:
        self.addresses = AddressRepository(session)
        self.users = UserRepository(session)

    async def _require_account(self, user_id: str) -> None:
        """Staff reach any account's book, but not one of no account, nor of a deleted one
        (its addresses were erased with it)."""
        if await self.users.get(user_id) is None:
            raise UserNotFound(f"no user {user_id}")

    async def list(self, user_id: str) -> list[Address]:
        await self._require_account(user_id)
        return await self.addresses.list_for(user_id)

    async def get(self, user_id: str, address_id: str) -> Address:
        address = await self.addresses.get(user_id, address_id)
        if address is None:
            raise AddressNotFound(f"no address {address_id}")
        return address

    async def create(self, user_id: str, data: AddressCreate) -> Address:
        fields = normalize_address(data.model_dump())
        check_whole_address(fields["country"], fields["zip"], fields.get("state"))
        # The account's row locked to the commit: concurrent adds to one book count one
        # after the other (each counted 49 and added, before, past the limit).
        if await self.users.lock(user_id) is None:
            raise UserNotFound(f"no user {user_id}")
        if await self.addresses.count_for(user_id) >= MAX_ADDRESSES_PER_USER:
            raise ValidationFailed(
                f"an address book holds at most {MAX_ADDRESSES_PER_USER} addresses",
                code="address_book_full",
            )
        address = Address(user_id=user_id, **fields)
        await self._take_defaults(address)
        await self._save(address)
        return address

    async def update(self, user_id: str, address_id: str, data: AddressUpdate) -> Address:
        address = await self.get(user_id, address_id)
        fields = normalize_address(data.model_dump(exclude_unset=True))
        for key in ("name", "street", "city", "zip", "country"):
            if key in fields and fields[key] is None:
                raise InvalidAddress(f"{key} cannot be removed", field=key)
        for key in ("is_default_shipping", "is_default_billing"):
            if key in fields and fields[key] is None:
                fields.pop(key)
        # Take the default flags from the old holders before this row claims them: a
        # flush in the other order would trip the one-default unique indexes.
        for flag in ("is_default_shipping", "is_default_billing"):
            if fields.get(flag):
                await self.addresses.clear_default(user_id, flag, keep=address.id)
        for key, value in fields.items():
            setattr(address, key, value)
        check_whole_address(address.country, address.zip, address.state)
        address.updated_at = utcnow()
        await self._save(address)
        return address

    async def delete(self, user_id: str, address_id: str) -> None:
        await self.addresses.delete(await self.get(user_id, address_id))

    async def _save(self, address: Address) -> None:
        try:
            await self.addresses.save(address)
        except IntegrityError as exc:
            raise Conflict(
                "another request changed this address book's defaults at the same time; retry",
                code="address_default_conflict",
            ) from exc

    async def _take_defaults(self, address: Address) -> None:
        # The old default stops being one in the same transaction; the partial unique
        # indexes make two concurrent requests unable to leave two defaults.
        for flag in ("is_default_shipping", "is_default_billing"):
            if getattr(address, flag):
                await self.addresses.clear_default(address.user_id, flag, keep=address.id)
