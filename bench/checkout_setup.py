"""The untimed setup of ``shop bench checkout`` (and of ``shop bench fulfilment``, which
places its orders the same way), through the API as a client would: a staff account,
one product with enough stock, shoppers registered and signed in with one unit each in
their cart, the shoppers' onboarding workflows let finish; ``BenchError`` and
``check_status`` for an answer the benchmark cannot go on from."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx

from core.settings import Settings

PASSWORD = "bench checkout shopper password 2026"
# Sign-in throttling counts attempts per address before the password is checked (20 in
# flight would trip it), so setup signs in fewer shoppers at once than it registers.
REGISTER_CONCURRENCY = 8
LOGIN_CONCURRENCY = 8


class BenchError(Exception):
    """The stack answered something the benchmark cannot go on from."""


def check_status(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


@dataclass(frozen=True)
class Shopper:
    headers: dict[str, str]
    cart_id: str


async def _gather_limited(limit: int, jobs: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(one(j) for j in jobs))


async def _login(http: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    for _ in range(5):
        response = await http.post("/api/auth/login", json={"email": email, "password": password})
        if response.status_code == 429:  # throttled: wait as told, then try again
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        tokens = check_status(response, 200)
        return {"Authorization": f"Bearer {tokens['accessToken']}"}
    raise BenchError(f"sign-in of {email} stayed throttled")


async def staff_headers(http: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    """A staff account: registered through the API, promoted in the database (the API
    lets nobody make themselves staff), then signed in."""
    from core.db import create_engine, create_session_factory, transaction
    from models.users import Role
    from services.users import UserRepository

    email = f"bench-staff-{uuid4().hex[:10]}@shopweave.example"
    user = check_status(
        await http.post(
            "/api/users", json={"email": email, "password": PASSWORD, "name": "Bench Staff"}
        ),
        201,
    )
    engine = create_engine(settings)
    try:
        async with transaction(create_session_factory(engine)) as session:
            row = await UserRepository(session).get(user["id"])
            if row is None:
                raise BenchError(f"{user['id']} is not in the stack's database: another stack?")
            row.role = Role.STAFF
            session.add(row)
    finally:
        await engine.dispose()
    return await _login(http, email, PASSWORD)


async def stocked_product(http: httpx.AsyncClient, staff: dict[str, str], stock: int) -> str:
    sku = f"BENCH-{uuid4().hex[:10].upper()}"
    product = check_status(
        await http.post(
            "/api/products",
            headers=staff,
            json={"sku": sku, "name": "Bench Checkout Widget", "price": 2500, "currency": "USD"},
        ),
        201,
    )
    check_status(
        await http.post(
            f"/api/inventory/{product['id']}/adjust",
            headers=staff,
            json={"delta": stock, "reason": "bench checkout stock"},
        ),
        200,
    )
    return str(product["id"])


async def shoppers(http: httpx.AsyncClient, count: int, product_id: str) -> list[Shopper]:
    run = uuid4().hex[:8]
    emails = [f"bench-{run}-{n:05d}@example.com" for n in range(count)]

    async def register(email: str) -> None:
        body = {"email": email, "password": PASSWORD, "name": "Bench Shopper"}
        check_status(await http.post("/api/users", json=body), 201)

    async def sign_in_and_fill(email: str) -> Shopper:
        headers = await _login(http, email, PASSWORD)
        cart = check_status(
            await http.post(
                "/api/cart/items", headers=headers, json={"productId": product_id, "quantity": 1}
            ),
            200,
            201,
        )
        return Shopper(headers, str(cart["id"]))

    await _gather_limited(REGISTER_CONCURRENCY, [register(e) for e in emails])
    result: list[Shopper] = await _gather_limited(
        LOGIN_CONCURRENCY, [sign_in_and_fill(e) for e in emails]
    )
    return result


async def wait_for_onboarding(settings: Settings) -> None:
    """Let the shoppers' welcome-email workflows finish so they do not compete with the
    timed orders for the workers (best effort: skipped if Temporal cannot be asked)."""
    from temporal.client import connect

    try:
        client = await connect(settings)
        query = "WorkflowType = 'UserOnboardingWorkflow' AND ExecutionStatus = 'Running'"
        for _ in range(600):
            if (await client.count_workflows(query)).count == 0:
                return
            await asyncio.sleep(0.1)
    except Exception:  # visibility unavailable: the timed part just starts sooner
        await asyncio.sleep(2)
