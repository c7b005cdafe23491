"""The cart: a signed-in user's, or a guest's named by the X-Cart-Token header."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Header, Query, Response, status

from api.deps import DbSession, State, after_commit
from api.problems import ProblemSpec, problem_responses, raises
from api.security import Caller, CurrentUser, OptionalUser, require_own_user_id
from core.errors import Forbidden, ValidationFailed
from models.carts import (
    CartItemAdd,
    CartItemUpdate,
    CartPublic,
    CouponApply,
    ShareCreate,
    SharedCartView,
    SharePublic,
)
from models.quotes import Destination
from services.analytics.tracking import SignInRequired
from services.cart_reminders import cart_closed, cart_touched
from services.cart_shares import CartShares, ShareNotFound
from services.carts import CartInCheckout, CartItemNotFound, CartService, OwnedCart
from services.catalog.errors import ProductNotFound
from services.checkout import CartNotFound
from services.inventory import OutOfStock

router = APIRouter(prefix="/cart", tags=["cart"])

NO_CART = CartNotFound
QUANTITY_LIMIT = (ValidationFailed, "quantity_limit")
# What adding a product to a cart can answer.
ADDING: tuple[ProblemSpec, ...] = (
    ProductNotFound,
    (ValidationFailed, "product_inactive"),
    QUANTITY_LIMIT,
    OutOfStock,
    (ValidationFailed, "cart_full"),
    (ValidationFailed, "currency_mismatch"),
    CartInCheckout,
)

CartToken = Annotated[
    str | None,
    Header(alias="X-Cart-Token", max_length=100, description="A guest cart's token"),
]
CartCookie = Annotated[str | None, Cookie(alias="cart_token", max_length=100)]
Country = Annotated[
    str | None,
    Query(min_length=2, max_length=2, description="Destination for the tax estimate"),
]


async def _keep_reminder_in_step(
    state: State,
    session: DbSession,
    caller: Caller | None,
    owned: OwnedCart,
    *,
    closed: bool = False,
) -> None:
    """With the change, push back (or stop) the cart's abandonment timer; Temporal hears
    of it after the commit. Guests get no reminder: there is nobody to write to."""
    if caller is None:
        return
    user, cart_id = caller.user, owned.cart.id
    if closed:
        await cart_closed(session, cart_id)
        after_commit(session, partial(state.workflows.cart_reminders.stop, cart_id))
        return
    start = await cart_touched(session, state.settings, cart_id=cart_id, user_id=user.id)
    if start is not None:
        after_commit(session, partial(state.workflows.starts.start, start))


def _service(state: State, session: DbSession) -> CartService:
    return CartService(session, state.settings, state.analytics)


@dataclass
class CartHandle:
    """The caller's existing cart with what endpoints do to it."""

    service: CartService
    owned: OwnedCart
    state: State
    session: DbSession
    caller: Caller | None

    async def changed(self, *, closed: bool = False) -> None:
        await _keep_reminder_in_step(
            self.state, self.session, self.caller, self.owned, closed=closed
        )

    async def view(self) -> CartPublic:
        return await self.service.view(self.owned)


@raises(NO_CART)
async def _existing_cart(
    state: State,
    session: DbSession,
    caller: OptionalUser,
    token: CartToken = None,
    cookie: CartCookie = None,
) -> CartHandle:
    service = _service(state, session)
    owned = await _cart(service, caller, token or cookie, create=False)
    return CartHandle(service, owned, state, session, caller)


ExistingCart = Annotated[CartHandle, Depends(_existing_cart)]


async def _cart(
    service: CartService, caller: OptionalUser, token: str | None, *, create: bool
) -> OwnedCart:
    user_id = caller.user.id if caller else None
    if create:
        return await service.find_or_create(user_id, token)
    found = await service.find(user_id, token)
    if found is None:
        raise CartNotFound("there is no cart yet")
    return found


@router.get(
    "", summary="The current cart", response_model=CartPublic, responses=problem_responses(NO_CART)
)
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
    destination = Destination(country=country, state=region) if country else None
    return await service.view(owned, destination)


@router.post(
    "/items",
    status_code=status.HTTP_201_CREATED,
    summary="Add a product to the cart",
    response_model=CartPublic,
    responses=problem_responses(*ADDING, (Forbidden, "user_mismatch"), SignInRequired),
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
    caller's: another's answers 403 `user_mismatch`, and a guest's 401
    `sign_in_required`, as on `POST /api/analytics/track`). Creates the cart if needed: a
    guest's response carries `cartToken`, to be sent back as `X-Cart-Token`. More than is
    available answers 409 `out_of_stock` with `available`; an unknown product 404, an
    inactive one 422."""
    require_own_user_id(
        caller, body.user_id, guest_hint="; a guest's cart is named by its cartToken"
    )
    service = _service(state, session)
    owned = await _cart(service, caller, token or cookie, create=True)
    await service.add(owned, body.product_id, body.quantity)
    await _keep_reminder_in_step(state, session, caller, owned)
    return await service.view(owned)


@router.patch(
    "/items/{product_id}",
    summary="Change a line's quantity",
    response_model=CartPublic,
    responses=problem_responses(CartItemNotFound, QUANTITY_LIMIT, OutOfStock, CartInCheckout),
)
async def update_item(product_id: str, body: CartItemUpdate, cart: ExistingCart) -> CartPublic:
    """Set the quantity of a product already in the cart."""
    await cart.service.set_quantity(cart.owned, product_id, body.quantity)
    await cart.changed()
    return await cart.view()


@router.delete(
    "/items/{product_id}",
    summary="Remove a line",
    response_model=CartPublic,
    responses=problem_responses(CartItemNotFound, CartInCheckout),
)
async def remove_item(product_id: str, cart: ExistingCart) -> CartPublic:
    """Take a product out of the cart."""
    await cart.service.remove(cart.owned, product_id)
    await cart.changed()
    return await cart.view()


@router.delete(
    "",
    summary="Empty the cart",
    response_model=CartPublic,
    responses=problem_responses(CartInCheckout),
)
async def clear_cart(cart: ExistingCart) -> CartPublic:
    """Remove every line and the coupon."""
    await cart.service.clear(cart.owned)
    await cart.changed(closed=True)
    return await cart.view()


@router.post(
    "/coupon",
    summary="Apply a coupon",
    response_model=CartPublic,
    responses=problem_responses((ValidationFailed, "coupon_not_applicable"), CartInCheckout),
)
async def apply_coupon(body: CouponApply, cart: ExistingCart) -> CartPublic:
    """A coupon that does not apply answers 422 `coupon_not_applicable` with its `reason`
    (see `POST /api/coupons/validate`)."""
    await cart.service.apply_coupon(cart.owned, body.code)
    await cart.changed()
    return await cart.view()


@router.delete(
    "/coupon",
    summary="Remove the coupon",
    response_model=CartPublic,
    responses=problem_responses(CartInCheckout),
)
async def remove_coupon(cart: ExistingCart) -> CartPublic:
    """The cart no longer carries a coupon."""
    await cart.service.remove_coupon(cart.owned)
    return await cart.view()


@router.post(
    "/share",
    status_code=status.HTTP_201_CREATED,
    summary="Share the cart",
    response_model=SharePublic,
    responses=problem_responses(),
)
async def share_cart(cart: ExistingCart, body: ShareCreate | None = None) -> SharePublic:
    """A link anyone can open (`GET /api/carts/shared/{token}`, no personal data) and
    copy into their own cart. With `canEdit`, signed-in holders can add to this cart."""
    share, share_token = await CartShares(cart.service).create(
        cart.owned, body.can_edit if body else False
    )
    return SharePublic(
        id=share.id,
        token=share_token,
        url=f"{cart.state.settings.api_base_url}/api/carts/shared/{share_token}",
        can_edit=share.can_edit,
        created_at=share.created_at,
    )


@router.delete(
    "/share/{share_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a share link",
    response_class=Response,
    responses=problem_responses(ShareNotFound),
)
async def revoke_share(share_id: str, cart: ExistingCart) -> Response:
    """The link stops working at once."""
    await CartShares(cart.service).revoke(cart.owned, share_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


shared = APIRouter(prefix="/carts/shared", tags=["cart"])


@shared.get(
    "/{share_token}",
    summary="View a shared cart",
    response_model=SharedCartView,
    responses=problem_responses(ShareNotFound),
)
async def view_shared(share_token: str, state: State, session: DbSession) -> SharedCartView:
    """Read-only: lines and totals, nothing about the owner."""
    return await CartShares(_service(state, session)).view(share_token)


@shared.post(
    "/{share_token}/copy",
    summary="Copy a shared cart into yours",
    response_model=CartPublic,
    responses=problem_responses(ShareNotFound, CartInCheckout),
)
async def copy_shared(
    share_token: str,
    state: State,
    session: DbSession,
    caller: OptionalUser,
    token: CartToken = None,
    cookie: CartCookie = None,
) -> CartPublic:
    """Adds the shared lines to your cart (made if needed), capped by stock."""
    service = _service(state, session)
    mine = await _cart(service, caller, token or cookie, create=True)
    await CartShares(service).copy_into(share_token, mine)
    return await service.view(mine)


@shared.post(
    "/{share_token}/items",
    summary="Add to a shared cart",
    response_model=SharedCartView,
    responses=problem_responses(ShareNotFound, (Forbidden, "share_read_only"), *ADDING),
)
async def add_to_shared(
    share_token: str, body: CartItemAdd, state: State, session: DbSession, caller: CurrentUser
) -> SharedCartView:
    """Only through a link made with `canEdit`, and only signed in (a household filling
    one cart together)."""
    shares = CartShares(_service(state, session))
    await shares.add_as_editor(share_token, body.product_id, body.quantity)
    return await shares.view(share_token)
