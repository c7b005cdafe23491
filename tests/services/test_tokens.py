"""Access tokens between API replicas whose clocks differ a little."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from models.users import Role
from services.tokens import (
    ALGORITHM,
    AUDIENCE,
    CLOCK_SKEW_SECONDS,
    ISSUER,
    AccessTokens,
    InvalidToken,
    TokenExpired,
)

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def _signed(*, iat: float, exp: float, override: dict[str, Any] | None = None) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user_01TOKENTEST",
        "role": "customer",
        "sid": "sess_01TOKENTEST",
        "jti": "jti-token-test",
        "iat": int(iat),
        "exp": int(exp),
    }
    return jwt.encode(claims | (override or {}), SECRET, algorithm=ALGORITHM)


def test_a_token_from_a_replica_whose_clock_runs_ahead_is_accepted() -> None:
    """Issued on a host a few seconds ahead, its ``iat`` is in this host's future: PyJWT
    refused that as "not yet valid" (401 invalid_token for a token just issued)."""
    now = time.time()
    claims = AccessTokens(SECRET, 900).decode(_signed(iat=now + 5, exp=now + 905))
    assert claims.user_id == "user_01TOKENTEST"
    assert claims.role is Role.CUSTOMER


def test_expiry_stays_exact_and_a_far_future_iat_is_refused() -> None:
    now = time.time()
    tokens = AccessTokens(SECRET, 900)
    with pytest.raises(TokenExpired):
        tokens.decode(_signed(iat=now - 900, exp=now - 2))
    with pytest.raises(InvalidToken):
        tokens.decode(_signed(iat=now + CLOCK_SKEW_SECONDS + 60, exp=now + 3600))
    with pytest.raises(InvalidToken):
        tokens.decode(_signed(iat=now, exp=now + 900, override={"iat": "soon"}))
