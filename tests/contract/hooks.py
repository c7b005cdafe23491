"""Schemathesis hooks for the contract test (loaded through ``SCHEMATHESIS_HOOKS``).

Requests go out as the test's staff member. The fuzzer signs out and revokes tokens
like any client, so each 401 fetches a fresh access token, issued for the staff
member with the API's own signing key (a new session each time, as a sign-in would
give, without an argon2 hash per 401). The staff member's own account is never
deleted: every later request would answer 401 `account_deleted`.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import schemathesis
from schemathesis import Case
from schemathesis.auths import AuthContext
from schemathesis.hooks import HookContext

from models.users import Role
from services.tokens import AccessTokens

STAFF_ID = os.environ["SHOP_CONTRACT_STAFF_ID"]
_tokens = AccessTokens(os.environ["SHOP_CONTRACT_JWT_SECRET"], ttl_seconds=900)


@schemathesis.auth(refresh_interval=600)
class StaffToken:
    def get(self, case: Case[Any], context: AuthContext) -> str:
        token, _ = _tokens.issue(STAFF_ID, Role.STAFF, f"contract-{secrets.token_hex(8)}")
        return token

    def set(self, case: Case[Any], data: str, context: AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def filter_case(context: HookContext, case: Case[Any]) -> bool:
    return not (
        case.method.upper() == "DELETE"
        and case.operation.path == "/api/users/{user_id}"
        and (case.path_parameters or {}).get("user_id") == STAFF_ID
    )
