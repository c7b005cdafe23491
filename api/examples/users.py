"""Examples of accounts: sign-in, users and their address book."""

from __future__ import annotations

from api.examples.common import ADDRESS, CREATED_AT, CURRENCY, UPDATED_AT, USER_ID, page

USER = {
    "id": USER_ID,
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "role": "customer",
    "createdAt": CREATED_AT,
    "updatedAt": UPDATED_AT,
    "lifetimeValue": 12998,
    "lifetimeValueCurrency": CURRENCY,
    "ordersCount": 2,
    "firstOrderAt": "2026-11-02T10:15:00Z",
    "lastOrderAt": "2026-12-01T18:40:00Z",
}
NEW_USER = USER | {
    "updatedAt": CREATED_AT,
    "lifetimeValue": 0,
    "ordersCount": 0,
    "firstOrderAt": None,
    "lastOrderAt": None,
}
TOKENS = {
    "accessToken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyXzAxSkVYM1E0UjUifQ."
    "kq3Yx1m0c8sQ2v7pR4nT6wZ9bJ5hL1dF3gA8eC0uV2o",
    "tokenType": "Bearer",
    "expiresIn": 900,
    "refreshToken": "rt_3kQ9vX2mN8pL5rT7wY1zB4cF6hJ0sD2gK8nM5qV7xZ",
    "refreshExpiresIn": 2592000,
    "user": USER,
}
ADDRESS_PUBLIC = ADDRESS | {
    "isDefaultShipping": True,
    "isDefaultBilling": False,
    "id": "addr_01JEX4A5B6C7D8E9F0G1H2J3K4",
    "userId": USER_ID,
    "createdAt": CREATED_AT,
    "updatedAt": UPDATED_AT,
}
ADDRESS_IN = ADDRESS | {"isDefaultShipping": True, "isDefaultBilling": False}
PROFILE = {"name": "Ada King", "email": "ada.king@example.com"}

RESPONSES: dict[str, dict[int, object]] = {
    "POST /api/auth/login": {200: TOKENS},
    "POST /api/auth/refresh": {200: TOKENS},
    "POST /api/admin/sign-in-locks/unlock": {
        200: {"email": "ada@example.com", "ip": "203.0.113.7", "unlocked": True}
    },
    "POST /api/users": {201: NEW_USER},
    "GET /api/users": {200: page(USER, total=100)},
    "GET /api/users/me": {200: USER},
    "GET /api/users/{user_id}": {200: USER},
    "PATCH /api/users/{user_id}": {200: USER | {"name": "Ada King"}},
    "PUT /api/users/{user_id}": {200: USER | PROFILE},
    "GET /api/users/{user_id}/addresses": {200: [ADDRESS_PUBLIC]},
    "POST /api/users/{user_id}/addresses": {201: ADDRESS_PUBLIC | {"updatedAt": CREATED_AT}},
    "GET /api/users/{user_id}/addresses/{address_id}": {200: ADDRESS_PUBLIC},
    "PATCH /api/users/{user_id}/addresses/{address_id}": {
        200: ADDRESS_PUBLIC | {"phone": "+1 617 555 0199"}
    },
    "PUT /api/users/{user_id}/addresses/{address_id}": {200: ADDRESS_PUBLIC},
}
REQUESTS: dict[str, object] = {
    "POST /api/auth/login": {
        "email": "ada@example.com",
        "password": "violet tangerine orbit lamp 42",
    },
    "POST /api/auth/refresh": {"refreshToken": TOKENS["refreshToken"]},
    "POST /api/auth/logout": {"refreshToken": TOKENS["refreshToken"]},
    "POST /api/admin/sign-in-locks/unlock": {"email": "ada@example.com", "ip": "203.0.113.7"},
    "POST /api/users": {
        "email": "ada@example.com",
        "password": "violet tangerine orbit lamp 42",
        "name": "Ada Lovelace",
    },
    "PATCH /api/users/{user_id}": {"name": "Ada King"},
    "PUT /api/users/{user_id}": PROFILE,
    "POST /api/users/{user_id}/addresses": ADDRESS_IN,
    "PATCH /api/users/{user_id}/addresses/{address_id}": {"phone": "+1 617 555 0199"},
    "PUT /api/users/{user_id}/addresses/{address_id}": ADDRESS_IN,
}
