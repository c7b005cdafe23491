"""Sign-in, token refresh and sign-out."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from api.deps import AnonymousIdHeader, DbSession, State
from api.problems import REDIS_UNAVAILABLE, problem_responses
from api.security import CurrentUser, StaffUser, client_info
from models.auth import (
    LoginRequest,
    LoginUnlock,
    LoginUnlocked,
    LogoutRequest,
    RefreshRequest,
    TokenPair,
)
from models.users import UserPublic
from services.analytics.identity import IdentityLinks
from services.auth import (
    AuthService,
    InvalidCredentials,
    InvalidRefreshToken,
    IssuedTokens,
    RefreshTokenReused,
)
from services.carts import CartService
from services.throttle import LoginThrottle, TooManyAttempts

log = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"])
admin = APIRouter(prefix="/admin", tags=["auth"])


def auth_service(state: State, session: DbSession) -> AuthService:
    s = state.settings
    return AuthService(
        session,
        tokens=state.access_tokens,
        revocations=state.revocations,
        throttle=LoginThrottle.from_settings(state.redis, s),
        refresh_ttl=timedelta(days=s.refresh_token_ttl_days),
    )


def _pair(issued: IssuedTokens, state: State) -> TokenPair:
    return TokenPair(
        access_token=issued.access_token,
        expires_in=state.access_tokens.ttl_seconds,
        refresh_token=issued.refresh_token,
        refresh_expires_in=issued.refresh_expires_in,
        user=UserPublic.model_validate(issued.user, from_attributes=True),
    )


@router.post(
    "/login",
    summary="Sign in",
    response_model=TokenPair,
    responses=problem_responses(InvalidCredentials, TooManyAttempts, REDIS_UNAVAILABLE),
)
async def login(
    body: LoginRequest,
    request: Request,
    state: State,
    session: DbSession,
    cart_token: Annotated[str | None, Header(alias="X-Cart-Token", max_length=100)] = None,
    anonymous_id: AnonymousIdHeader = None,
) -> TokenPair:
    """Exchange email and password for an access token (a JWT, 15 minutes) and a refresh
    token (opaque, 30 days, single use).

    A wrong password and an unknown email both answer 401 `invalid_credentials`, in the
    same time. The email is normalised as registration does (case, Unicode, an `xn--`
    domain), for the lookup and the lock-out alike: after 5 failures for an email (in
    any spelling; or 20 from one address) within 15 minutes, attempts answer 429
    `too_many_attempts` with `Retry-After` until the window ends.
    With `X-Cart-Token`, that guest cart is merged into the user's cart: quantities add
    up, capped by stock and the per-line maximum. With `anonymousId` (or the
    `X-Anonymous-Id` header), the visitor's analytics events (and the merged guest cart's)
    count for the user from now on, the earlier ones included.
    """
    service = auth_service(state, session)
    client = client_info(request)
    anonymous = body.anonymous_id or anonymous_id
    linking = state.settings.analytics_enabled and bool(anonymous or cart_token)
    if linking:
        await _write_waiting_events(state)
    # The account's row is locked first, the carts' after it (AuthService.authenticate).
    signing_in = await service.authenticate(body.email, body.password, client)
    guest_cart_id = None
    if cart_token:
        guest_cart_id = await CartService(
            session, state.settings, state.analytics
        ).merge_guest_cart(cart_token, signing_in.user.id)
    issued = await service.complete_login(signing_in, body.password, client)
    if linking and (anonymous or guest_cart_id):
        await IdentityLinks(session).sign_in(
            issued.user.id, anonymous_id=anonymous, guest_cart_id=guest_cart_id
        )
    return _pair(issued, state)


async def _write_waiting_events(state: State) -> None:
    """The guest's last views may still wait in this process's batch writer: written
    before the sign-in links the visitor, they move with the rest (events buffered
    elsewhere find the link when written). Written before ``authenticate`` locks the
    account: the writer holds (``FOR SHARE``) the accounts its events name, and a
    sign-in that upgrades the password's hash has locked the row to write it, so a flush
    after that lock waited for it until its write timed out. Sign-in does not fail for
    analytics: the link is made regardless."""
    try:
        await state.ingest.flush()
    except Exception:
        log.warning("analytics events not written before linking a sign-in", exc_info=True)


@router.post(
    "/refresh",
    summary="Rotate the refresh token",
    response_model=TokenPair,
    responses=problem_responses(InvalidRefreshToken, RefreshTokenReused, REDIS_UNAVAILABLE),
)
async def refresh(
    body: RefreshRequest, request: Request, state: State, session: DbSession
) -> TokenPair:
    """Trade a refresh token for a new access token and a new refresh token; the old one
    stops working. Presenting an already-rotated refresh token again answers 401
    `refresh_token_reused` and ends that whole session (every token of its family)."""
    service = auth_service(state, session)
    return _pair(await service.refresh(body.refresh_token, client_info(request)), state)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out",
    response_class=Response,
    responses=problem_responses(),
)
async def logout(
    caller: CurrentUser, state: State, session: DbSession, body: LogoutRequest | None = None
) -> Response:
    """Revoke this access token (it answers 401 `token_revoked` from now on) and the
    session's refresh tokens (plus the family of `refreshToken`, if given)."""
    await auth_service(state, session).logout(caller.claims, body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin.post(
    "/sign-in-locks/unlock",
    summary="Lift a sign-in lock-out (staff)",
    response_model=LoginUnlocked,
    responses=problem_responses(),
)
async def unlock_sign_in(body: LoginUnlock, caller: StaffUser, state: State) -> LoginUnlocked:
    """After too many failed sign-ins an email (or a client address) is refused, even
    with the right password, until `LOGIN_THROTTLE_WINDOW_SECONDS` pass. Staff lift that
    at once for an `email`, an `ip`, or both; `unlocked` says whether anything was
    locked. The same as `shop admin unlock EMAIL [--ip IP]`."""
    throttle = LoginThrottle.from_settings(state.redis, state.settings)
    unlocked = await throttle.unlock(email=body.email, ip=body.ip)
    return LoginUnlocked(email=body.email, ip=body.ip, unlocked=unlocked)
