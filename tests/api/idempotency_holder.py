"""A first request with an Idempotency-Key whose API process is SIGKILLed while it runs,
for ``test_idempotency_lease.py``:

    python -m tests.api.idempotency_holder REDIS_URL LEASE_SECONDS KEY CART_TOKEN BODY

The request (``POST /api/users`` with ``BODY``, under ``KEY`` and the guest cart
``CART_TOKEN``) goes through the real middleware, whose endpoint never answers. Prints
``running`` once it holds its key and its endpoint runs, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

from starlette.types import Message, Receive, Scope, Send

from api import idempotency
from api.idempotency import IdempotencyMiddleware
from core.redis import create_redis
from core.settings import Settings


async def _endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    print("running", flush=True)
    await asyncio.Event().wait()  # until the process is killed


async def hold(redis_url: str, lease_seconds: float, key: str, cart: str, body: str) -> None:
    idempotency.LEASE_SECONDS = lease_seconds
    redis = create_redis(Settings(redis_url=redis_url))
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/users",
        "query_string": b"",
        "headers": [(b"idempotency-key", key.encode()), (b"x-cart-token", cart.encode())],
        "client": ("127.0.0.1", 50000),
        "app": SimpleNamespace(state=SimpleNamespace(shop=SimpleNamespace(redis=redis))),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    async def send(message: Message) -> None:
        raise AssertionError("the endpoint never answers")

    await IdempotencyMiddleware(_endpoint)(scope, receive, send)


if __name__ == "__main__":
    asyncio.run(hold(sys.argv[1], float(sys.argv[2]), *sys.argv[3:6]))
