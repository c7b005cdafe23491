"""Users: registration, profiles, deletion; staff can list accounts."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from api.deps import DbSession, State, after_commit
from api.problems import ProblemSpec, problem_responses
from api.routes.auth import auth_service
from api.security import Caller, CurrentUser, StaffUser, client_info, require_self_or_staff
from core.errors import Forbidden, ValidationFailed
from models.base import Page
from models.users import Role, User, UserCreate, UserPublic, UserReplace, UserUpdate
from services.cart_reminders import account_deleted
from services.onboarding import request_onboarding
from services.passwords import WeakPassword
from services.throttle import TooManyAttempts
from services.users import EmailTaken, RegistrationContext, UserNotFound, UserService

router = APIRouter(prefix="/users", tags=["users"])


def _users(state: State, session: DbSession) -> UserService:
    return UserService(
        session,
        analytics=state.analytics,
        password_min_length=state.settings.password_min_length,
    )


def public(user: object) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register a user",
    response_model=UserPublic,
    responses=problem_responses(EmailTaken, WeakPassword),
)
async def register(
    body: UserCreate, request: Request, state: State, session: DbSession
) -> UserPublic:
    """Create a customer account and send the welcome email.

    The email is normalised (trimmed, Unicode NFC, an `xn--` domain in Unicode,
    lower-cased), as sign-in normalises it; one that is already registered, in any
    spelling, answers 409 `email_taken`. The password needs at least 15 characters (NIST
    SP 800-63B-4) and must not be common, repetitive or built from the email or name:
    otherwise 422 `weak_password`. The welcome email is sent by a durable workflow, so
    registration succeeds even when the email provider or Temporal is briefly down.
    """
    user = await _users(state, session).register(
        body, RegistrationContext(user_agent=request.headers.get("user-agent"))
    )
    start = request_onboarding(session, user, state.settings)
    after_commit(session, partial(state.workflows.starts.start, start))
    return public(user)


@router.get(
    "",
    summary="List users (staff)",
    response_model=Page[UserPublic],
    responses=problem_responses(),
)
async def list_users(
    caller: StaffUser,
    state: State,
    session: DbSession,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    role: Role | None = None,
) -> Page[UserPublic]:
    """Every active account, newest first. Staff only."""
    users, total = await _users(state, session).list(page=page, limit=limit, role=role)
    return Page(items=[public(u) for u in users], total=total, page=page, limit=limit)


@router.get(
    "/me", summary="The signed-in user", response_model=UserPublic, responses=problem_responses()
)
async def me(caller: CurrentUser) -> UserPublic:
    """The account the access token belongs to."""
    return public(caller.user)


@router.get(
    "/{user_id}",
    summary="Get a user",
    response_model=UserPublic,
    responses=problem_responses(UserNotFound),
)
async def get_user(
    user_id: str, caller: CurrentUser, state: State, session: DbSession
) -> UserPublic:
    """Yourself, or anyone for staff. Another user's id answers 404."""
    require_self_or_staff(caller, user_id)
    return public(await _users(state, session).get(user_id))


# What changing a profile can answer (see `_update`).
PROFILE_CHANGE: tuple[ProblemSpec, ...] = (
    UserNotFound,
    (Forbidden, "admin_only"),
    (Forbidden, "forbidden"),
    TooManyAttempts,
    (ValidationFailed, "current_password_required"),
    (Forbidden, "current_password_invalid"),
    EmailTaken,
    WeakPassword,
)


def _require_can_manage(caller: Caller, target: User) -> None:
    """Staff manage customers; only admins manage other staff and admin accounts."""
    if caller.user.id != target.id and Role(target.role).is_staff and caller.user.role != "admin":
        raise Forbidden("only an admin can change another staff account", code="admin_only")


async def _update(
    user_id: str,
    body: UserUpdate,
    caller: CurrentUser,
    state: State,
    session: DbSession,
    request: Request,
) -> UserPublic:
    require_self_or_staff(caller, user_id)
    service = _users(state, session)
    user = await service.get(user_id)
    _require_can_manage(caller, user)
    auth = auth_service(state, session)
    if body.password is not None:
        if caller.user.id != user_id:
            raise Forbidden("only the account holder can change a password", code="forbidden")
        # Guessing the current password is throttled like signing in: a stolen access
        # token must not become an unlimited password oracle.
        await auth.throttle.attempt(user.email, client_info(request).ip)
    user, password_changed = await service.update(user, body)
    if body.password is not None:
        await auth.throttle.succeeded(user.email, client_info(request).ip)
    if password_changed:
        await auth.end_other_sessions(user.id, caller.claims.session_id)
    return public(user)


@router.patch(
    "/{user_id}",
    summary="Update some profile fields",
    response_model=UserPublic,
    responses=problem_responses(*PROFILE_CHANGE),
)
async def patch_user(
    user_id: str,
    body: UserUpdate,
    caller: CurrentUser,
    state: State,
    session: DbSession,
    request: Request,
) -> UserPublic:
    """Change `name`, `email` or `password` (with `currentPassword`). Changing the
    password signs out every other session of the account."""
    return await _update(user_id, body, caller, state, session, request)


@router.put(
    "/{user_id}",
    summary="Replace the profile",
    response_model=UserPublic,
    responses=problem_responses(*PROFILE_CHANGE),
)
async def put_user(
    user_id: str,
    body: UserReplace,
    caller: CurrentUser,
    state: State,
    session: DbSession,
    request: Request,
) -> UserPublic:
    """Set `name` and `email` (both required); `password` as for PATCH."""
    return await _update(user_id, body, caller, state, session, request)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an account",
    response_class=Response,
    responses=problem_responses(UserNotFound, (Forbidden, "admin_only")),
)
async def delete_user(
    user_id: str, caller: CurrentUser, state: State, session: DbSession
) -> Response:
    """Anonymise the person (name, email, password, addresses) and end every session.
    Order records stay, referring to the anonymised account."""
    require_self_or_staff(caller, user_id)
    service = _users(state, session)
    user = await service.get(user_id)
    _require_can_manage(caller, user)
    await service.delete(user)
    cart_id = await account_deleted(session, user.id)
    if cart_id is not None:
        after_commit(session, partial(state.workflows.cart_reminders.stop, cart_id))
    await auth_service(state, session).end_other_sessions(user.id, keep_session=None)
    if caller.user.id == user_id:
        await state.revocations.revoke_token(caller.claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
