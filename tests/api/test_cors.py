"""OPTIONS and CORS (api/cors.py): a storefront's page on another origin can call the API,
read its answers (errors too) and the headers it needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from api.app import create_app
from core.settings import Settings
from tests.factories import signed_up

SHOP = "https://shop.example.com"
PREFLIGHT = {"Origin": SHOP, "Access-Control-Request-Method": "POST"}
MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def storefront(make_client: MakeClient) -> httpx.AsyncClient:
    return await make_client(cors_allowed_origins=SHOP)


@pytest.mark.parametrize(
    ("path", "method", "headers", "methods"),
    [
        (
            "/api/orders",
            "POST",
            "authorization,content-type,idempotency-key",
            "GET, HEAD, POST, OPTIONS",
        ),
        (
            "/api/products/prod_x",
            "PATCH",
            "Authorization, Content-Type",
            "GET, HEAD, PUT, PATCH, DELETE, OPTIONS",
        ),
        ("/api/cart/items", "POST", "content-type,x-cart-token", "POST, OPTIONS"),
        ("/api/events/stream", "GET", "authorization,last-event-id", "GET, HEAD, OPTIONS"),
    ],
)
async def test_a_preflight_from_an_allowed_origin_is_204_with_the_path_s_methods(
    storefront: httpx.AsyncClient, path: str, method: str, headers: str, methods: str
) -> None:
    response = await storefront.options(
        path,
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == SHOP
    assert response.headers["access-control-allow-methods"] == methods
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {h.strip().lower() for h in headers.split(",")} <= allowed
    assert {"if-none-match", "prefer", "x-cart-token"} <= allowed
    assert response.headers["access-control-max-age"] == "600"
    assert "Origin" in response.headers["vary"]
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["x-request-id"].startswith("req_")


async def test_a_preflight_from_another_origin_is_refused_without_cors_headers(
    storefront: httpx.AsyncClient,
) -> None:
    response = await storefront.options(
        "/api/orders", headers={**PREFLIGHT, "Origin": "https://evil.example.net"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "cors_preflight_refused"
    assert not [h for h in response.headers if h.startswith("access-control-")]
    # Nor does a plain request from it get them: the browser keeps the answer from the page.
    get = await storefront.get("/api/products", headers={"Origin": "https://evil.example.net"})
    assert get.status_code == 200
    assert "access-control-allow-origin" not in get.headers
    assert get.headers["vary"] == "Origin"


async def test_a_preflight_for_a_method_or_header_the_api_does_not_take_is_refused(
    storefront: httpx.AsyncClient,
) -> None:
    method = await storefront.options(
        "/api/auth/login", headers={**PREFLIGHT, "Access-Control-Request-Method": "DELETE"}
    )
    assert method.status_code == 403
    assert "DELETE is not allowed on /api/auth/login: POST, OPTIONS" in method.json()["detail"]
    header = await storefront.options(
        "/api/orders", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-secret"}
    )
    assert header.status_code == 403
    assert "x-secret" in header.json()["detail"]


async def test_answers_to_an_allowed_origin_carry_the_headers_a_storefront_reads(
    storefront: httpx.AsyncClient,
) -> None:
    response = await storefront.get("/api/products?limit=1", headers={"Origin": SHOP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"ETag", "Location", "Retry-After", "X-Request-ID", "Idempotent-Replayed"} <= exposed
    assert response.headers["vary"] == "Origin"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/nothing-here", None, 404),
        ("GET", "/api/users/me", None, 401),
        ("POST", "/api/users", b'{"email": "not-an-email"}', 422),
        ("DELETE", "/health", None, 405),
        ("POST", "/api/users", b"x" * 2_000_000, 413),
    ],
)
async def test_error_answers_carry_the_cors_headers(
    storefront: httpx.AsyncClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    response = await storefront.request(
        method,
        path,
        content=body,
        headers={"Origin": SHOP, "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["access-control-allow-origin"] == SHOP
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]


async def test_a_403_and_a_429_carry_the_cors_headers(
    storefront: httpx.AsyncClient, settings: Settings
) -> None:
    user, auth = await signed_up(storefront)
    staff_only = await storefront.get("/api/admin/fulfillments", headers={"Origin": SHOP, **auth})
    assert staff_only.status_code == 403, staff_only.text
    assert staff_only.headers["access-control-allow-origin"] == SHOP
    wrong = {"email": user["email"], "password": "not the password at all"}
    for _ in range(settings.login_max_failures_per_email):
        await storefront.post("/api/auth/login", json=wrong)
    throttled = await storefront.post("/api/auth/login", json=wrong, headers={"Origin": SHOP})
    assert throttled.status_code == 429, throttled.text
    assert throttled.headers["access-control-allow-origin"] == SHOP
    assert "Retry-After" in throttled.headers["access-control-expose-headers"]


async def test_a_500_carries_the_cors_headers(settings: Settings) -> None:
    """The 500 is answered by Starlette's outermost middleware, outside ours."""
    app = create_app(
        Settings.model_validate(settings.model_dump() | {"cors_allowed_origins": SHOP})
    )

    @app.get("/api/_test/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        response = await http.get("/api/_test/boom", headers={"Origin": SHOP})
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert response.headers["access-control-allow-origin"] == SHOP
    assert response.headers["vary"] == "Origin"


async def test_an_event_stream_answers_an_allowed_origin(storefront: httpx.AsyncClient) -> None:
    """A fetch-based EventSource sends the access token: its stream carries the headers."""
    _, auth = await signed_up(storefront)
    head = await storefront.head("/api/events/stream", headers={"Origin": SHOP, **auth})
    assert head.status_code == 200, head.text
    assert head.headers["content-type"].startswith("text/event-stream")
    assert head.headers["access-control-allow-origin"] == SHOP


async def test_plain_options_is_204_with_allow(client: httpx.AsyncClient) -> None:
    products = await client.options("/api/products")
    assert products.status_code == 204, products.text
    assert products.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert products.content == b""
    assert "access-control-allow-origin" not in products.headers
    login = await client.options("/api/auth/login")
    assert login.headers["allow"] == "POST, OPTIONS"
    missing = await client.options("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


async def test_the_dev_servers_are_allowed_outside_production(client: httpx.AsyncClient) -> None:
    """The suite's settings name no origins: the defaults outside production hold."""
    response = await client.options(
        "/api/orders",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"


async def test_any_origin(make_client: MakeClient) -> None:
    http = await make_client(cors_allowed_origins="*")
    response = await http.get("/health", headers={"Origin": "https://anyone.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    preflight = await http.options("/api/orders", headers=PREFLIGHT)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"


async def test_credentials_when_asked_for(make_client: MakeClient) -> None:
    http = await make_client(cors_allowed_origins=SHOP, cors_allow_credentials=True)
    preflight = await http.options("/api/orders", headers=PREFLIGHT)
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-allow-origin"] == SHOP
