"""The cart: a signed-in user's, or a guest's named by the X-Cart-Token header."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Header, Query, status

from api.deps import DbSession, State
from api.problems import problem_responses
from api.security import OptionalUser
from core.errors import Forbidden, NotFound
from models.carts import CartItemAdd, CartItemUpdate, CartPublic, CouponApply
from services.carts import CartService, OwnedCart

router = APIRouter(prefix="/cart", tags=["cart"])

CartToken = Annotated[
    str | None,
    Header(alias="X-Cart-Token", max_length=100, description="A guest cart's token"),
]
CartCookie = Annotated[str | None, Cookie(alias="cart_token", max_length=100)]
Country = Annotated[
    str | None,
    Query(min_length=2, max_length=2, description="Destination for the tax estimate"),
]


def _service(state: State, session: DbSession) -> CartService:
    return CartService(session, state.settings, state.analytics)


async def _cart(
    service: CartService, caller: OptionalUser, token: str | None, *, create: bool
) -> OwnedCart:
    user_id = caller.user.id if caller else None
    if create:
        return await service.find_or_create(user_id, token)
    found = await service.find(user_id, token)
    if found is None:
        raise NotFound("there is no cart yet", code="cart_not_found")
    return found


@router.get("", summary="The current cart", response_model=CartPublic,
            responses=problem_responses(404))  # fmt: skip
async def get_cart(
    state: State,
    session: DbSession,
    caller: OptionalUser,
    token: CartToken = None,
    cookie: CartCookie = None,
    country: Country = None,
    region: Annotated[str | None, Query(alias="state", max_length=10)] = None,
) -> CartPublic:
    """Lines at current prices (each says if its price changed since it was added), then
    subtotal, automatic and coupon discounts, shipping, tax and total, in minor units.
    Pass `country` (and `state`) for the tax of a destination."""
    service = _service(state, session)
    owned = await _cart(service, caller, token or cookie, create=False)
    return await service.view(owned, country=country, state=region)


@router.post(
    "/items",
    status_code=status.HTTP_201_CREATED,
    summary="Add a product to the cart",
    response_model=CartPublic,
    responses=problem_responses(403, 404, 409, 422),
)
async def add_item(
    body: CartItemAdd,
    state: State,
    session: DbSession,
    caller: OptionalUser,
    token: CartToken = None,
    cookie: CartCookie = None,
) -> CartPublic:
    """The seed's `{productId, quantity}` (a `userId` is accepted only if it is the
    caller's). Creates the cart if needed: a guest's response carries `cartToken`, to be
    sent back as `X-Cart-Token`. More than is available answers 409 `out_of_stock` with
    `available`; an unknown product 404, an inactive one 422."""
    if body.user_id is not None and (caller is None or body.user_id != caller.user.id):
        raise Forbidden("userId must be your own", code="user_mismatch")
    service = _service(state, session)
    owned = await _cart(service, caller, token or cookie, create=True)
    await service.add(owned, body.product_id, body.quantity)
    return await service.view(owned)


@router.patch("/items/{product_id}", summary="Change a line's quantity",
              response_model=CartPublic, responses=problem_responses(404, 409, 422))  # fmt: skip
async def update_item(
    product_id: str,
    body: CartItemUpdate,
    state: State,
    session: DbSession,
    caller: OptionalUser,
    token: CartToken = None,
    cookie: CartCookie = None,
) -> CartPublic:
    """Set the quantity of a product already in the cart."""
    service = _service(state, session)
    owned = await _cart(service, caller, token or cookie, create=False)
    await service.set_quantity(owned, product_id, body.quantity)
    return await service.view(owned)


@router.delete("/items/{product_id}", summary="Remove a line", response_model=CartPublic,
               responses=problem_responses(404))  # fmt: skip
async def remove_item(
    product_id: str,
    state: State,
    session: DbSession,
    caller: OptionalUser,
    token: CartToken = None,
    cookie: CartCookie = None,
) -> CartPublic:
    """Take a product out of the cart."""
    service = _service(state, session)
    owned = await _cart(service, caller, token or cookie, create=False)
    await service.remove(owned, product_id)
    return await service.view(owned)


@router.delete("", summary="Empty the cart", response_model=CartPublic,
               responses=problem_responses(404))  # fmt: skip
async def clear_cart(
    state: State,
    session: DbSession,
    caller: OptionalUser,
    token: CartToken = None,
    cookie: CartCookie = None,
) -> CartPublic:
    """Remove every line and the coupon."""
    service = _service(state, session)
    owned = await _cart(service, caller, token or cookie, create=False)
    await service.clear(owned)
    return await service.view(owned)


@router.post("/coupon", summary="Apply a coupon", response_model=CartPublic,
             responses=problem_responses(404, 422))  # fmt: skip
async def apply_coupon(
    body: CouponApply,
    state: State,
    session: DbSession,
    caller: OptionalUser,
    token: CartToken = None,
    cookie: CartCookie = None,
) -> CartPublic:
    """A coupon that does not apply answers 422 `coupon_not_applicable` with its `reason`
    (see `POST /api/coupons/validate`)."""
    service = _service(state, session)
    owned = await _cart(service, caller, token or cookie, create=False)
    await service.apply_coupon(owned, body.code)
    return await service.view(owned)


@router.delete("/coupon", summary="Remove the coupon", response_model=CartPublic,
               responses=problem_responses(404))  # fmt: skip
async def remove_coupon(
    state: State,
    session: DbSession,
    caller: OptionalUser,
    token: CartToken = None,
    cookie: CartCookie = None,
) -> CartPublic:
    """The cart no longer carries a coupon."""
    service = _service(state, session)
    owned = await _cart(service, caller, token or cookie, create=False)
    await service.remove_coupon(owned)
    return await service.view(owned)
