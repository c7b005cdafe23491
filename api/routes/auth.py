"""Sign-in, token refresh and sign-out."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from api.deps import DbSession, State
from api.problems import problem_responses
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
from services.auth import (
    AuthService,
    InvalidCredentials,
    InvalidRefreshToken,
    IssuedTokens,
    RefreshTokenReused,
)
from services.carts import CartService
from services.throttle import LoginThrottle, TooManyAttempts

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
    responses=problem_responses(InvalidCredentials, TooManyAttempts),
)
async def login(
    body: LoginRequest,
    request: Request,
    state: State,
    session: DbSession,
    cart_token: Annotated[str | None, Header(alias="X-Cart-Token", max_length=100)] = None,
) -> TokenPair:
    """Exchange email and password for an access token (a JWT, 15 minutes) and a refresh
    token (opaque, 30 days, single use).

    A wrong password and an unknown email both answer 401 `invalid_credentials`, in the
    same time. After 5 failures for an email (or 20 from one address) within 15 minutes,
    attempts answer 429 `too_many_attempts` with `Retry-After` until the window ends.
    With `X-Cart-Token`, that guest cart is merged into the user's cart: quantities add
    up, capped by stock and the per-line maximum.
    """
    service = auth_service(state, session)
    issued = await service.login(body.email, body.password, client_info(request))
    if cart_token:
        await CartService(session, state.settings, state.analytics).merge_guest_cart(
            cart_token, issued.user.id
        )
    return _pair(issued, state)


@router.post(
    "/refresh",
    summary="Rotate the refresh token",
    response_model=TokenPair,
    responses=problem_responses(InvalidRefreshToken, RefreshTokenReused),
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
