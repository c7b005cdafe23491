"""Sign-in, refresh-token rotation with reuse detection, sign-out, session revocation."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from core.errors import Unauthenticated
from models.auth import RefreshToken
from models.base import utcnow
from models.users import User
from services import passwords
from services.throttle import LoginThrottle
from services.tokens import AccessClaims, AccessTokens, Revocations, new_session_id
from services.users import UserRepository, normalize_email

REFRESH_PREFIX = "rt_"


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    title = "The email or password is wrong"


class InvalidRefreshToken(Unauthenticated):
    code = "invalid_refresh_token"
    title = "The refresh token is not valid"


class RefreshTokenReused(Unauthenticated):
    code = "refresh_token_reused"
    title = "The refresh token was already used"


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ClientInfo:
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Authenticated:
    """An account whose password was just verified, its row locked for the sign-in."""

    user: User
    # Its hash is to be upgraded: the row is locked to be written (``UserRepository.lock``).
    rehash: bool


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    access_claims: AccessClaims
    refresh_token: str
    refresh_expires_in: int
    user: User


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def issued_to(self, token_hash: str) -> tuple[str, str] | None:
        """The account and the session (family) a token was issued in, read without a
        lock: neither ever changes."""
        result = await self.session.exec(
            select(RefreshToken.user_id, RefreshToken.family_id).where(
                RefreshToken.token_hash == token_hash
            )
        )
        found = result.first()
        return None if found is None else (found[0], found[1])

    async def lock_family(self, family_id: str) -> None:
        """The session's own lock, held to the commit: a transaction-level advisory lock
        on its family, which a refresh takes before any of the family's rows (its token's,
        then the rotation's write or the reuse's revocation of them all). Two refreshes of
        one session take their turns: each once locked its own token first, and two
        reuses (or a reuse and the rotation of a token issued meanwhile) then each waited
        for a row the other had locked. Not a row of the family: the first token's row
        would do only while no later one sorts before it, which ids made on hosts whose
        clocks differ do not promise."""
        key = func.hashtextextended(f"rtok:{family_id}", 0)
        await self.session.exec(select(func.pg_advisory_xact_lock(key)))

    async def by_hash_for_update(self, token_hash: str) -> RefreshToken | None:
        result = await self.session.exec(
            locked(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
        )
        return result.first()

    async def add(self, row: RefreshToken) -> None:
        """Insert or update, flushed now."""
        self.session.add(row)
        await self.session.flush()

    async def revoke_family(self, family_id: str) -> None:
        await self.session.exec(
            update(RefreshToken)
            .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=utcnow())
        )

    async def family_revoked(self, family_id: str) -> bool:
        result = await self.session.exec(
            select(RefreshToken.id).where(
                RefreshToken.family_id == family_id, col(RefreshToken.revoked_at).is_not(None)
            )
        )
        return result.first() is not None

    async def live_families(self, user_id: str, *, except_family: str | None) -> list[str]:
        query = select(RefreshToken.family_id).where(
            RefreshToken.user_id == user_id, col(RefreshToken.revoked_at).is_(None)
        )
        if except_family is not None:
            query = query.where(RefreshToken.family_id != except_family)
        return sorted(set((await self.session.exec(query)).all()))

    async def revoke_families(self, families: list[str]) -> None:
        if families:
            await self.session.exec(
                update(RefreshToken)
                .where(
                    col(RefreshToken.family_id).in_(families),
                    col(RefreshToken.revoked_at).is_(None),
                )
                .values(revoked_at=utcnow())
            )


class AuthService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        tokens: AccessTokens,
        revocations: Revocations,
        throttle: LoginThrottle,
        refresh_ttl: timedelta,
    ) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.refresh_tokens = RefreshTokenRepository(session)
        self.tokens = tokens
        self.revocations = revocations
        self.throttle = throttle
        self.refresh_ttl = refresh_ttl

    async def authenticate(self, email: str, password: str, client: ClientInfo) -> Authenticated:
        """The account of ``email`` if ``password`` is its password (``InvalidCredentials``
        otherwise, alike for an unknown email and in the same time), its row then locked
        to the commit before the sign-in locks any other row (its carts, to merge a
        guest's): the one lock order of ``core.db.locked``. Locked to be written
        (``UserRepository.lock``) if ``complete_login`` will rehash the password, held
        (``hold``) otherwise: a hold later upgraded to the rehash's write deadlocked
        with another holder (a checkout), and the cart's lock taken before the
        account's, with the erasure (the account, then the cart it closes). An account
        erased, or its password changed, since it was read is the lock's to see."""
        email = normalize_email(email)
        await self.throttle.attempt(email, client.ip)
        user = await self.users.by_email(email)
        if user is None:
            await passwords.burn_verify_time(password)
            ok = False
        else:
            ok = await passwords.verify_password(user.password_hash, password)
        if not ok or user is None:
            raise InvalidCredentials("the email or password is wrong")
        signing_in = await self._lock(user, password)
        await self.throttle.succeeded(email, client.ip)
        return signing_in

    async def _lock(self, user: User, password: str) -> Authenticated:
        verified = user.password_hash
        rehash = passwords.needs_rehash(verified)
        # The lock re-reads the row into ``user`` (``core.db.locked``).
        row = await (self.users.lock(user.id) if rehash else self.users.hold(user.id))
        if row is None:  # erased meanwhile
            raise InvalidCredentials("the email or password is wrong")
        if row.password_hash != verified and not await passwords.verify_password(
            row.password_hash, password
        ):
            raise InvalidCredentials("the email or password is wrong")
        # A hash changed meanwhile (another sign-in's rehash) is upgraded only under the
        # lock taken to write it.
        return Authenticated(row, rehash and passwords.needs_rehash(row.password_hash))

    async def complete_login(
        self, signing_in: Authenticated, password: str, client: ClientInfo
    ) -> IssuedTokens:
        """The signed-in session of the account ``authenticate`` locked: its hash
        upgraded if it was made at a lower cost (a write of the account's row, locked
        for it), tokens issued."""
        user = signing_in.user
        if signing_in.rehash:
            user.password_hash = await passwords.hash_password(password)
            await self.users.save(user)
        return await self._issue(user, new_session_id(), client)

    async def refresh(self, refresh_token: str, client: ClientInfo) -> IssuedTokens:
        """The next tokens of the session. The account's row is held (``FOR SHARE``),
        then the session is locked (``lock_family``), then the token's row: the one lock
        order of ``core.db.locked``. The erasure locks the account, then revokes its
        tokens, and a rotation that locked its token first, then wrote the next one (whose
        foreign key waits for the erasure's rewrite of the account), deadlocked with it;
        two refreshes of one session that each locked their token first, then revoked
        the session's rows (a reused token), deadlocked with each other. A sign-out, a
        password change and the erasure lock the account (``FOR NO KEY UPDATE``), which
        no refresh of it holds meanwhile, before they revoke its sessions' rows."""
        token_hash = hash_refresh_token(refresh_token)
        issued = await self.refresh_tokens.issued_to(token_hash)
        user = await self.users.hold(issued[0]) if issued is not None else None
        if issued is None or user is None:  # no such token, or its account erased
            raise InvalidRefreshToken("the refresh token is not valid; sign in again")
        await self.refresh_tokens.lock_family(issued[1])
        row = await self.refresh_tokens.by_hash_for_update(token_hash)
        if row is None or row.revoked_at is not None:
            raise InvalidRefreshToken("the refresh token is not valid; sign in again")
        if row.rotated_at is not None:
            # A rotated token came back: it was stolen, or the client is broken. Either
            # way nobody can tell the thief from the owner, so the whole login goes. The
            # revocation must outlive the error response, hence the commit here.
            await self.refresh_tokens.revoke_family(row.family_id)
            await self.session.commit()
            await self.revocations.revoke_sessions([row.family_id])
            raise RefreshTokenReused(
                "this refresh token was already used; the session has been ended"
            )
        if await self.refresh_tokens.family_revoked(row.family_id):
            # A logout or password change revoked this session while this refresh waited.
            raise InvalidRefreshToken("this session has ended; sign in again")
        if row.expires_at <= datetime.now(UTC):
            raise InvalidRefreshToken("the refresh token has expired; sign in again")
        row.rotated_at = utcnow()
        await self.refresh_tokens.add(row)
        return await self._issue(user, row.family_id, client)

    async def logout(self, claims: AccessClaims, refresh_token: str | None) -> None:
        """Revoke the session's refresh tokens (and those of ``refresh_token``'s family, if
        it is the caller's: another account's token is ignored, as an unknown one is) and
        the access token. The house order of ``core.db.locked``: the account's row first
        (``UserRepository.lock``), then the sessions (``RefreshTokenRepository
        .lock_family``, in order), then their tokens' rows (the revocation). The erasure
        locks the account, then revokes every token of the account, and a logout that
        locked its token first, then revoked its family's older tokens, waited in a circle
        with it. Locked, not held: a refresh that found a stolen token revokes a family
        under a hold, after locking that token, and two holders could wait in a circle
        too. The presented token is read without a lock (``issued_to``) to learn whose it
        is: locked before that check, two sign-outs each presenting the other account's
        token each locked their own account, then the other's token, then waited for
        each other's tokens to revoke their own session."""
        # None once erased: its tokens are revoked already, the access token still is.
        await self.users.lock(claims.user_id)
        families = {claims.session_id}
        if refresh_token:
            issued = await self.refresh_tokens.issued_to(hash_refresh_token(refresh_token))
            if issued is not None and issued[0] == claims.user_id:
                families.add(issued[1])
        for family in sorted(families):
            await self.refresh_tokens.lock_family(family)
        await self.refresh_tokens.revoke_families(sorted(families))
        await self.revocations.revoke_token(claims)
        await self.revocations.revoke_sessions(sorted(families))

    async def end_other_sessions(self, user_id: str, keep_session: str | None) -> None:
        """After a password change (keep the current one) or deletion (keep none)."""
        families = await self.refresh_tokens.live_families(user_id, except_family=keep_session)
        await self.refresh_tokens.revoke_families(families)
        await self.revocations.revoke_sessions(families)

    async def _issue(self, user: User, family_id: str, client: ClientInfo) -> IssuedTokens:
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        await self.refresh_tokens.add(
            RefreshToken(
                user_id=user.id,
                family_id=family_id,
                token_hash=hash_refresh_token(token),
                expires_at=utcnow() + self.refresh_ttl,
                user_agent=(client.user_agent or "")[:500] or None,
                ip=client.ip,
            )
        )
        access, claims = self.tokens.issue(user.id, user.role, family_id)
        return IssuedTokens(
            access_token=access,
            access_claims=claims,
            refresh_token=token,
            refresh_expires_in=int(self.refresh_ttl.total_seconds()),
            user=user,
        )
