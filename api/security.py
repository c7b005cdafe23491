"""Who is calling: ``CurrentUser``, ``StaffUser``, ``AdminUser`` dependency aliases, and
``StreamingUser`` for the live streams (a Bearer token, or a stream ticket)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import DbSession, LastEventId, ReadSession, State
from api.head_requests import is_head
from api.problems import REDIS_UNAVAILABLE, raised_by, raises
from api.state import AppState
from core.errors import Forbidden, Unauthenticated
from core.notifications import Lease
from models.users import Role, User
from services.analytics.tracking import SignInRequired
from services.auth import ClientInfo
from services.stream_tickets import (
    InvalidStreamTicket,
    OpenedTicket,
    StreamTicketExpired,
    StreamTicketUsed,
    StreamTicketWrongStream,
)
from services.tokens import AccessClaims, InvalidToken, TokenExpired, TokenRevoked
from services.users import AccountDeleted, UserNotFound, UserRepository

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/auth/login")


@dataclass(frozen=True)
class Caller:
    user: User
    claims: AccessClaims
    # The stream ticket a live stream was opened with (``StreamingUser``), if it was.
    ticket: OpenedTicket | None = None

    @property
    def is_staff(self) -> bool:
        return Role(self.user.role).is_staff

    def last_event_id(self, sent: str | None) -> str | None:
        """Where a live stream resumes: the request's own (``LastEventId``: the
        ``Last-Event-ID`` header, else ``?lastEventId=``), else the ``lastEventId`` its
        ticket was asked for with (a new EventSource sends none)."""
        if sent and sent.strip():
            return sent
        return self.ticket.last_event_id if self.ticket is not None else None


async def _identify(
    state: AppState, session: AsyncSession, credentials: HTTPAuthorizationCredentials | None
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated(
            "send an access token as `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await _identify_claims(
        state, session, state.access_tokens.decode(credentials.credentials)
    )


async def _identify_claims(
    state: AppState,
    session: AsyncSession,
    claims: AccessClaims,
    ticket: OpenedTicket | None = None,
) -> Caller:
    await state.revocations.check(claims)
    user = await UserRepository(session).get(claims.user_id)
    if user is None:
        raise AccountDeleted("this account no longer exists")
    return Caller(user=user, claims=claims, ticket=ticket)


@raises(
    Unauthenticated,
    AccountDeleted,
    InvalidToken,
    TokenExpired,
    TokenRevoked,
    # The token's revocation is checked in Redis (``_identify_claims``).
    REDIS_UNAVAILABLE,
)
async def _caller(
    state: State,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return await _identify(state, session, credentials)


@raises(*raised_by(_caller))
async def _reading_caller(
    state: State,
    session: ReadSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """``_caller`` for an endpoint that only reads: the user is read in the request's read
    session (autocommit), which the endpoint shares, so a read opens no transaction (no
    ``BEGIN`` and ``ROLLBACK`` round trips: the long-poll's two per ``GET``, issue #15)."""
    return await _identify(state, session, credentials)


StreamTicket = Annotated[
    str | None,
    Query(
        description="A stream ticket from `POST /api/events/stream-tickets`, for a client "
        "that cannot send `Authorization` (a browser's `EventSource`): this stream's path "
        "only, first used within a minute, then by this stream's reconnects only",
        examples=["stk_Xq3v9R0bq6kq1Ahx5T2mZcYwB8nE4uJd7fLp0sGiKoM"],
    ),
]


@raises(
    *raised_by(_caller),
    InvalidStreamTicket,
    StreamTicketExpired,
    StreamTicketUsed,
    StreamTicketWrongStream,
)
async def _streaming_caller(
    request: Request,
    state: State,
    session: ReadSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    resume: LastEventId,
    ticket: StreamTicket = None,
) -> Caller:
    """The caller of a live stream: ``Authorization: Bearer``, or ``?ticket=`` (which
    then stands for the access token that asked for it, and is held by this stream).
    A request that carries a last event id (header or query) is a reconnect. A ``HEAD``
    (a link prefetcher, a proxy checking the URL) has the ticket checked as its ``GET``
    would, and neither spends it nor takes it over: the EventSource still opens with it."""
    if ticket is None:
        return await _identify(state, session, credentials)
    opened = await state.stream_tickets.redeem(
        ticket,
        request.scope["path"],
        reconnect=bool(resume and resume.strip()),
        spend=not is_head(request),
    )
    if opened.claims.expires_at <= datetime.now(UTC):
        raise TokenExpired(
            "the access token this stream ticket was issued for has expired; "
            "get a new ticket with a fresh token"
        )
    return await _identify_claims(state, session, opened.claims, opened)


@raises(*raised_by(_caller))
async def _optional_caller(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller | None:
    """No token, no database: a catalogue read by a guest opens no session for this
    (the user is read in a read session of its own only when a token comes)."""
    if credentials is None:
        return None
    async with state.read_sessions() as session:
        return await _identify(state, session, credentials)


@raises((Forbidden, "staff_only"))
async def _staff(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
    if not caller.is_staff:
        raise Forbidden("this needs a staff account", code="staff_only")
    return caller


@raises((Forbidden, "admin_only"))
async def _admin(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
    if caller.user.role != "admin":
        raise Forbidden("this needs an admin account", code="admin_only")
    return caller


CurrentUser = Annotated[Caller, Depends(_caller)]
# The caller of an endpoint that only reads, with ``ReadSession`` (not ``DbSession``).
ReadingUser = Annotated[Caller, Depends(_reading_caller)]
OptionalUser = Annotated[Caller | None, Depends(_optional_caller)]
# The caller of a live stream (``ReadSession``): a Bearer token, or a stream ticket.
StreamingUser = Annotated[Caller, Depends(_streaming_caller)]
StaffUser = Annotated[Caller, Depends(_staff)]
AdminUser = Annotated[Caller, Depends(_admin)]


def token_optional(dependencies: Collection[object]) -> bool:
    """Whether an endpoint with these dependencies takes an access token without needing
    one: ``OptionalUser`` and no ``CurrentUser``, ``ReadingUser``, ``StaffUser`` or
    ``AdminUser``; or ``StreamingUser``, whose stream ticket (a declared query parameter)
    stands in for it."""
    if _streaming_caller in dependencies:
        return True
    return _optional_caller in dependencies and not {_caller, _reading_caller} & set(dependencies)


def require_self_or_staff(caller: Caller, user_id: str) -> None:
    """Someone else's account answers 404, not 403, so ids cannot be probed."""
    if caller.user.id != user_id and not caller.is_staff:
        raise UserNotFound(f"no user {user_id}")


def require_own_user_id(
    caller: Caller | None, user_id: str | None, *, guest_hint: str = ""
) -> None:
    """The seed's bodies name the user (`POST /cart/items`'s `userId`, the order
    pipeline's `{cartId, userId, …}`), but the user always comes from the token: a
    `userId` is accepted only when it is the caller's own. Another's answers 403
    `user_mismatch`; a guest's 401 `sign_in_required` (``guest_hint`` added to its
    detail)."""
    if user_id is None:
        return
    if caller is None:
        raise SignInRequired(
            f"userId {user_id[:40]} needs that user's access token "
            f"(`Authorization: Bearer …`){guest_hint}"
        )
    if user_id != caller.user.id:
        raise Forbidden("userId must be your own", code="user_mismatch")


def stream_lease(state: AppState, caller: Caller, *, staff_only: bool = False) -> Lease:
    """How long a live stream opened by ``caller`` is served: until the access token it
    was opened with expires, and while that token is not revoked (asked every
    ``stream_token_check_seconds``). The client reconnects with a fresh token and
    ``Last-Event-ID``, and misses nothing. A ``staff_only`` stream (one the caller sees
    as staff, such as another customer's order) also ends once the caller is no longer
    staff, asked as often: a demoted member kept it until the token expired. A stream
    opened with a ticket also ends once another connection took the ticket over (one
    stream per ticket), asked as often."""

    async def still_valid() -> bool:
        try:
            await state.revocations.check(caller.claims)
        except TokenRevoked:
            return False
        if caller.ticket is not None and not await state.stream_tickets.holds(caller.ticket):
            return False
        if not staff_only:
            return True
        async with state.read_sessions() as session:
            user = await UserRepository(session).get(caller.user.id)
        return user is not None and Role(user.role).is_staff

    return Lease(caller.claims.expires_at, still_valid, state.settings.stream_token_check_seconds)


def client_info(request: Request) -> ClientInfo:
    return ClientInfo(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
