"""Every route of the app, walked: who may call it.

An operation is staff-only unless it is listed below as open to anyone or to any
signed-in customer. A new route is therefore a staff route until someone says
otherwise here, and one without ``StaffUser`` (or ``AdminUser``) fails this test; every
staff route is then called for real, anonymously and as a customer, and must refuse.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from api import security
from tests.api.route_table import Operation, operations
from tests.factories import signed_up

# Anyone, signed in or not (a token, if sent, may only add to what they see).
PUBLIC = frozenset(
    {
        "GET /health",
        "GET /ready",
        "GET /metrics",
        # The page itself; the figures on it come from staff-only API calls.
        "GET /dashboard",
        "GET /dashboard/assets/{name}",
        "POST /api/auth/login",
        "POST /api/auth/refresh",
        "POST /api/users",
        "GET /api/categories",
        "GET /api/products",
        "GET /api/products/{key}",
        "GET /api/products/{key}/reviews",
        "POST /api/coupons/validate",
        "GET /api/cart",
        "DELETE /api/cart",
        "POST /api/cart/items",
        "PATCH /api/cart/items/{product_id}",
        "DELETE /api/cart/items/{product_id}",
        "POST /api/cart/coupon",
        "DELETE /api/cart/coupon",
        "POST /api/cart/share",
        "DELETE /api/cart/share/{share_id}",
        "GET /api/carts/shared/{share_token}",
        "POST /api/carts/shared/{share_token}/copy",
        "GET /api/returns/reasons",
        "POST /api/analytics/track",
        # Signed by the provider, verified by the endpoint.
        "POST /api/payments/webhooks/stripe",
        "POST /api/shipping/webhooks/easypost",
    }
)
# Any signed-in user, on their own things (someone else's answer 404: tests of each
# domain check that).
CUSTOMER = frozenset(
    {
        "POST /api/auth/logout",
        "GET /api/users/me",
        "GET /api/users/{user_id}",
        "PATCH /api/users/{user_id}",
        "PUT /api/users/{user_id}",
        "DELETE /api/users/{user_id}",
        "GET /api/users/{user_id}/addresses",
        "POST /api/users/{user_id}/addresses",
        "GET /api/users/{user_id}/addresses/{address_id}",
        "PATCH /api/users/{user_id}/addresses/{address_id}",
        "PUT /api/users/{user_id}/addresses/{address_id}",
        "DELETE /api/users/{user_id}/addresses/{address_id}",
        "POST /api/products/{key}/reviews",
        "POST /api/carts/shared/{share_token}/items",
        "POST /api/orders",
        "GET /api/orders",
        "GET /api/orders/{order_id}",
        "POST /api/orders/{order_id}/cancel",
        "GET /api/orders/{order_id}/shipments/{shipment_id}",
        "GET /api/orders/{order_id}/events",
        "POST /api/orders/{order_id}/returns",
        "GET /api/orders/{order_id}/returns",
        "GET /api/returns/{return_id}",
        "GET /api/notifications",
        "POST /api/notifications/read-all",
        "POST /api/notifications/{notification_id}/read",
        "GET /api/events/stream",
        "POST /api/events/stream-tickets",
    }
)
# The providers' stand-ins: never mounted in production or beside the real provider
# (tests/api/test_sandbox_mounting.py), open to anyone where they are.
SANDBOX_PREFIX = "/_sandbox/"

_STAFF_GUARDS = {security._staff: "staff_only", security._admin: "admin_only"}
_SIGNED_IN = {security._caller, security._reading_caller, security._streaming_caller}


def _guard(operation: Operation) -> str | None:
    """The 403 code the operation's guard answers a customer, if it has one."""
    return next((c for g, c in _STAFF_GUARDS.items() if g in operation.dependencies), None)


def _api_operations(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if not op.path.startswith(SANDBOX_PREFIX)]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x_route_guard_test", path)


def test_every_route_is_staff_only_unless_listed(app: FastAPI) -> None:
    found = _api_operations(app)
    names = {str(op) for op in found}
    assert len(names) == len(found), "an operation is routed twice"
    assert names >= (PUBLIC | CUSTOMER), f"listed but gone: {(PUBLIC | CUSTOMER) - names}"
    unguarded = sorted(
        str(op) for op in found if str(op) not in PUBLIC | CUSTOMER and _guard(op) is None
    )
    assert unguarded == [], (
        "routes without StaffUser/AdminUser; guard them, or list them above as PUBLIC or "
        f"CUSTOMER if customers are meant to call them: {unguarded}"
    )
    listed_but_staff = sorted(
        str(op) for op in found if str(op) in PUBLIC | CUSTOMER and _guard(op)
    )
    assert listed_but_staff == [], listed_but_staff
    for op in found:
        if str(op) in CUSTOMER:
            assert _SIGNED_IN & set(op.dependencies), f"{op} does not need a signed-in user"
        if op.path.startswith("/api/admin/"):
            assert _guard(op) is not None, op


async def test_staff_routes_refuse_guests_and_customers(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    _, customer = await signed_up(client)
    staff_only = [op for op in _api_operations(app) if _guard(op) is not None]
    assert len(staff_only) > 50
    for op in staff_only:
        path = _concrete(op.path)
        anonymous = await client.request(op.method, path)
        assert anonymous.status_code == 401, (str(op), anonymous.text)
        assert anonymous.json()["code"] == "unauthenticated", (str(op), anonymous.text)
        as_customer = await client.request(op.method, path, headers=customer)
        assert as_customer.status_code == 403, (str(op), as_customer.text)
        assert as_customer.json()["code"] == _guard(op), (str(op), as_customer.text)


@pytest.mark.parametrize("forged", [False, True])
async def test_customer_routes_need_a_signed_in_user(
    app: FastAPI, client: httpx.AsyncClient, forged: bool
) -> None:
    headers = {"Authorization": "Bearer not-a-token"} if forged else {}
    want = "invalid_token" if forged else "unauthenticated"
    for op in _api_operations(app):
        if str(op) in CUSTOMER:
            response = await client.request(op.method, _concrete(op.path), headers=headers)
            assert response.status_code == 401, (str(op), response.text)
            assert response.json()["code"] == want, (str(op), response.text)
