"""Access tokens (short-lived JWTs) and their revocation list in Redis.

An access token names its user (``sub``), role, login session (``sid``, the refresh
token family) and its own id (``jti``). Logging out revokes the ``jti`` and the session;
both stay in Redis only until the longest-lived token they could match expires.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from redis.asyncio import Redis

from core.errors import Unauthenticated
from core.ids import IdPrefix, new_id
from models.users import Role

ISSUER = "shopweave"
AUDIENCE = "shopweave-api"
ALGORITHM = "HS256"
# API replicas run on hosts whose clocks differ a little: a token issued on one a few
# seconds ahead has an ``iat`` in another's future. PyJWT refuses that ("not yet valid")
# unless given a leeway, which would stretch ``exp`` as well; so expiry stays exact and
# only ``iat`` is allowed this much skew.
CLOCK_SKEW_SECONDS = 60
_JTI_KEY = "auth:revoked:jti:"
_SID_KEY = "auth:revoked:sid:"


class InvalidToken(Unauthenticated):
    code = "invalid_token"
    title = "The access token is not valid"


class TokenExpired(Unauthenticated):
    code = "token_expired"
    title = "The access token has expired"


class TokenRevoked(Unauthenticated):
    code = "token_revoked"
    title = "The access token has been revoked"


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    role: Role
    session_id: str
    jti: str
    expires_at: datetime


class AccessTokens:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str, role: Role, session_id: str) -> tuple[str, AccessClaims]:
        now = datetime.now(UTC)
        claims = AccessClaims(
            user_id=user_id,
            role=role,
            session_id=session_id,
            jti=secrets.token_urlsafe(16),
            expires_at=now + timedelta(seconds=self.ttl_seconds),
        )
        token = jwt.encode(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": user_id,
                "role": str(role),
                "sid": session_id,
                "jti": claims.jti,
                "iat": int(now.timestamp()),
                "exp": int(claims.expires_at.timestamp()),
            },
            self._secret,
            algorithm=ALGORITHM,
        )
        return token, claims

    def decode(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti", "sid"], "verify_iat": False},
            )
            if int(payload["iat"]) > time.time() + CLOCK_SKEW_SECONDS:
                raise InvalidToken("the access token is not valid yet")
            return AccessClaims(
                user_id=str(payload["sub"]),
                role=Role(payload["role"]),
                session_id=str(payload["sid"]),
                jti=str(payload["jti"]),
                expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("the access token has expired; refresh it") from exc
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError) as exc:
            raise InvalidToken("the access token is not valid") from exc


def new_session_id() -> str:
    return new_id(IdPrefix.SESSION)


class Revocations:
    """Revoked token ids and sessions, kept in Redis until no token could still match."""

    def __init__(self, redis: Redis, access_ttl_seconds: int) -> None:
        self.redis = redis
        self.access_ttl = access_ttl_seconds

    async def revoke_token(self, claims: AccessClaims) -> None:
        # Kept while a host whose clock lags (up to CLOCK_SKEW_SECONDS) still takes it.
        remaining = int((claims.expires_at - datetime.now(UTC)).total_seconds())
        remaining += CLOCK_SKEW_SECONDS
        if remaining > 0:
            await self.redis.set(_JTI_KEY + claims.jti, "1", ex=remaining)

    async def revoke_sessions(self, session_ids: list[str]) -> None:
        if not session_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in session_ids:
                pipe.set(_SID_KEY + sid, "1", ex=self.access_ttl + CLOCK_SKEW_SECONDS)
            await pipe.execute()

    async def check(self, claims: AccessClaims) -> None:
        jti, sid = await self.redis.mget(_JTI_KEY + claims.jti, _SID_KEY + claims.session_id)
        if jti is not None or sid is not None:
            raise TokenRevoked("this access token has been revoked; sign in again")
