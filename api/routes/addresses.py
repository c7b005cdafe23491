"""A user's address book: /users/{id}/addresses."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import DbSession
from api.problems import problem_responses
from api.security import CurrentUser, require_self_or_staff
from core.errors import Conflict, ValidationFailed
from models.users import Address, AddressCreate, AddressPublic, AddressUpdate
from services.addresses import AddressNotFound, AddressService, InvalidAddress
from services.users import UserNotFound

# Two requests making different addresses the default at once: one of them retries.
DEFAULTS_RACE = (Conflict, "address_default_conflict")

router = APIRouter(prefix="/users/{user_id}/addresses", tags=["addresses"])


def _public(address: Address) -> AddressPublic:
    return AddressPublic.model_validate(address, from_attributes=True)


@router.get(
    "",
    summary="List addresses",
    response_model=list[AddressPublic],
    responses=problem_responses(UserNotFound),
)
async def list_addresses(
    user_id: str, caller: CurrentUser, session: DbSession
) -> list[AddressPublic]:
    """Every address of the user, oldest first."""
    require_self_or_staff(caller, user_id)
    return [_public(a) for a in await AddressService(session).list(user_id)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add an address",
    response_model=AddressPublic,
    responses=problem_responses(
        UserNotFound, InvalidAddress, (ValidationFailed, "address_book_full"), DEFAULTS_RACE
    ),
)
async def create_address(
    user_id: str, body: AddressCreate, caller: CurrentUser, session: DbSession
) -> AddressPublic:
    """`country` is an ISO 3166-1 alpha-2 code; a US address's `zip` is five digits or
    ZIP+4 and it names its `state` (422 `invalid_address`, as checkout checks it). A book
    holds at most 50 addresses (422 `address_book_full`, concurrent adds included).
    Marking the address as default shipping (or billing) takes that flag from the
    previous default."""
    require_self_or_staff(caller, user_id)
    return _public(await AddressService(session).create(user_id, body))


@router.get(
    "/{address_id}",
    summary="Get an address",
    response_model=AddressPublic,
    responses=problem_responses(UserNotFound, AddressNotFound),
)
async def get_address(
    user_id: str, address_id: str, caller: CurrentUser, session: DbSession
) -> AddressPublic:
    """One address of the user."""
    require_self_or_staff(caller, user_id)
    return _public(await AddressService(session).get(user_id, address_id))


@router.patch(
    "/{address_id}",
    summary="Change some fields of an address",
    response_model=AddressPublic,
    responses=problem_responses(UserNotFound, AddressNotFound, InvalidAddress, DEFAULTS_RACE),
)
async def patch_address(
    user_id: str, address_id: str, body: AddressUpdate, caller: CurrentUser, session: DbSession
) -> AddressPublic:
    """Only the fields given change."""
    require_self_or_staff(caller, user_id)
    return _public(await AddressService(session).update(user_id, address_id, body))


@router.put(
    "/{address_id}",
    summary="Replace an address",
    response_model=AddressPublic,
    responses=problem_responses(UserNotFound, AddressNotFound, InvalidAddress, DEFAULTS_RACE),
)
async def put_address(
    user_id: str, address_id: str, body: AddressCreate, caller: CurrentUser, session: DbSession
) -> AddressPublic:
    """Every field is set from the body."""
    require_self_or_staff(caller, user_id)
    update = AddressUpdate.model_validate(body.model_dump())
    return _public(await AddressService(session).update(user_id, address_id, update))


@router.delete(
    "/{address_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an address",
    response_class=Response,
    responses=problem_responses(UserNotFound, AddressNotFound),
)
async def delete_address(
    user_id: str, address_id: str, caller: CurrentUser, session: DbSession
) -> Response:
    """Remove the address from the book."""
    require_self_or_staff(caller, user_id)
    await AddressService(session).delete(user_id, address_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
