"""Schemathesis hooks for the contract test (loaded through ``SCHEMATHESIS_HOOKS``).

Requests go out as the test's staff member. The fuzzer signs out and revokes tokens
like any client, so each 401 fetches a fresh access token, issued for the staff
member with the API's own signing key (a new session each time, as a sign-in would
give, without an argon2 hash per 401). The staff member's own account is never
deleted: every later request would answer 401 `account_deleted`.

A cookie value may hold only RFC 6265 cookie-octets: no whitespace, `"`, `,`, `;` or
`\\`. A negative case whose cookie breaks that is not a request the server can read as
sent (its cookie parser splits the header at `;`), so it proves nothing about the
schema and is skipped; cookies made of cookie-octets are still fuzzed both ways.
"""

from __future__ import annotations

import os
import re
import secrets
from typing import Any

import schemathesis
from schemathesis import Case
from schemathesis.auths import AuthContext
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.hooks import HookContext

from models.users import Role
from services.tokens import AccessTokens

_COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
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
    deletes_staff = (
        case.method.upper() == "DELETE"
        and case.operation.path == "/api/users/{user_id}"
        and (case.path_parameters or {}).get("user_id") == STAFF_ID
    )
    return not deletes_staff and not _unreadable_negative_cookie(case)


def _unreadable_negative_cookie(case: Case[Any]) -> bool:
    cookies = case.meta.components.get(ParameterLocation.COOKIE) if case.meta else None
    if cookies is None or cookies.mode is not GenerationMode.NEGATIVE:
        return False
    return any(not _COOKIE_OCTETS.fullmatch(str(v)) for v in (case.cookies or {}).values())
