"""``Idempotency-Key`` on creating POSTs, with Stripe's rules.

The same key with the same request returns the stored response (marked
``Idempotent-Replayed: true``) without running the endpoint again; the same key with a
different request answers 409 ``idempotency_key_reused``; a key whose first request is
still running answers 409 ``idempotency_key_in_progress``. Keys are scoped to the caller
(the signed-in user, else the guest cart token, else the client address) and kept for
24 hours. Server errors (5xx) are not stored, so the client can retry them, nor is a
body refused for its Content-Type (415), which nothing read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from http import HTTPStatus
from typing import Any

from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.guards import ClientGone
from api.problems import ProblemSpec, problem_response
from core.errors import Conflict, DependencyUnavailable, ShopError

KEEP_SECONDS = 24 * 3600
# How long a first request may run before its lock lapses (a crashed API replica must
# not hold a key forever).
LOCK_SECONDS = 60
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
# Answers given before the endpoint read the request, so nothing ran: not kept, so the
# same key with the request sent as it should be runs (415: the body was not sent as
# JSON; kept, its retry with the Content-Type set would get the 415 for 24 hours).
_NOTHING_RAN = frozenset({HTTPStatus.UNSUPPORTED_MEDIA_TYPE})
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
# What a request with an Idempotency-Key can answer besides the endpoint's own answers.
IDEMPOTENCY_PROBLEMS: tuple[ProblemSpec, ...] = (
    (ShopError, "invalid_idempotency_key"),
    (Conflict, "idempotency_key_reused"),
    (Conflict, "idempotency_key_in_progress"),
    (DependencyUnavailable, "idempotency_unavailable"),
)


def applies_to(method: str, path: str, prefix: str = "/api") -> bool:
    """Creating POSTs of the API; sign-in answers carry live tokens: never stored, never
    replayed."""
    return method == "POST" and path.startswith(prefix) and not path.startswith(f"{prefix}/auth/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, prefix: str = "/api") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not applies_to(scope["method"], scope["path"], self.prefix):
            await self.app(scope, receive, send)
            return
        key = _header(scope, b"idempotency-key")
        if key is None:
            await self.app(scope, receive, send)
            return
        request_id = scope.get("state", {}).get("request_id")
        if not _KEY.match(key):
            response = problem_response(
                status=HTTPStatus.BAD_REQUEST,
                code="invalid_idempotency_key",
                title="Invalid Idempotency-Key",
                detail="Idempotency-Key must be 1 to 255 printable ASCII characters",
                instance=scope["path"],
                request_id=request_id,
            )
            await response(scope, receive, send)
            return

        try:
            body = await _read_body(receive)
        except ClientGone:
            return  # the client went away before its request was whole: nothing to answer
        state = scope["app"].state.shop
        fingerprint = hashlib.sha256(
            b"\n".join([scope["path"].encode(), scope.get("query_string", b""), _canonical(body)])
        ).hexdigest()
        redis = state.redis
        try:
            owner = await _owner(scope, state)
            redis_key = f"idem:{owner}:{hashlib.sha256(key.encode()).hexdigest()}"
            acquired = await redis.set(
                redis_key,
                json.dumps({"state": "running", "fingerprint": fingerprint}),
                nx=True,
                ex=LOCK_SECONDS,
            )
            stored = None if acquired else await redis.get(redis_key)
        except RedisError:
            # Without Redis we cannot promise idempotency: refuse rather than risk a
            # second order or charge.
            response = problem_response(
                status=HTTPStatus.SERVICE_UNAVAILABLE,
                code="idempotency_unavailable",
                title="Idempotency store unavailable",
                detail="retry in a moment with the same Idempotency-Key",
                instance=scope["path"],
                request_id=request_id,
            )
            await response(scope, receive, send)
            return
        if not acquired:
            await self._answer_existing(scope, receive, send, stored, fingerprint, request_id)
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def replay_body() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]
                ]
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            try:
                if captured["status"] >= 500 or captured["status"] in _NOTHING_RAN:
                    await redis.delete(redis_key)
                else:
                    record = {
                        "state": "done",
                        "fingerprint": fingerprint,
                        "status": captured["status"],
                        "headers": [
                            (k, v)
                            for k, v in captured["headers"]
                            if k.lower() in ("content-type", "location", "retry-after")
                        ],
                        "body": base64.b64encode(captured["body"]).decode(),
                    }
                    await redis.set(redis_key, json.dumps(record), ex=KEEP_SECONDS)
            except RedisError:
                pass  # the lock lapses by itself

    async def _answer_existing(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        stored: str | None,
        fingerprint: str,
        request_id: str | None,
    ) -> None:
        record: dict[str, Any] = (
            json.loads(stored) if stored else {"state": "running", "fingerprint": fingerprint}
        )
        if record["fingerprint"] != fingerprint:
            response = problem_response(
                status=HTTPStatus.CONFLICT,
                code="idempotency_key_reused",
                title="Idempotency-Key reused",
                detail="this Idempotency-Key was used with a different request",
                instance=scope["path"],
                request_id=request_id,
            )
            await response(scope, receive, send)
            return
        if record["state"] != "done":
            response = problem_response(
                status=HTTPStatus.CONFLICT,
                code="idempotency_key_in_progress",
                title="Request in progress",
                detail="the first request with this Idempotency-Key is still running",
                instance=scope["path"],
                request_id=request_id,
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        headers = [
            (str(k).encode("latin-1"), str(v).encode("latin-1")) for k, v in record["headers"]
        ]
        headers.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": record["status"], "headers": headers})
        await send({"type": "http.response.body", "body": base64.b64decode(record["body"])})


def _canonical(body: bytes) -> bytes:
    """The request's parameters, not its bytes (Stripe compares parameters): a retry whose
    JSON was written out again (other spacing, keys in another order) is the same
    request. A body that is not JSON is compared as it came."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return body
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone  # a body cut short is not the request: never run, never kept
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _owner(scope: Scope, state: Any) -> str:
    """Whose key this is: a verified user, else a guest cart, else the client address.

    A token that was revoked (sign-out, password change, the account deleted) is no
    user's: their stored answers (an erased address, say) are not replayed to it."""
    authorization = _header(scope, b"authorization")
    if authorization and authorization.lower().startswith("bearer "):
        try:
            claims = state.access_tokens.decode(authorization[7:].strip())
            await state.revocations.check(claims)
            return f"user:{claims.user_id}"
        except ShopError:
            pass  # the endpoint will refuse the token; scope it like an anonymous call
    cart = _header(scope, b"x-cart-token")
    if cart:
        return "cart:" + hashlib.sha256(cart.encode()).hexdigest()[:32]
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"
