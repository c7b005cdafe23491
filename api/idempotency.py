"""``Idempotency-Key`` on creating POSTs, with Stripe's rules.

The same key with the same request returns the stored response (marked
``Idempotent-Replayed: true``) without running the endpoint again; the same key with a
different request answers 409 ``idempotency_key_reused``; a key whose first request is
still running answers 409 ``idempotency_key_in_progress`` with ``Retry-After``. Keys are
scoped to the caller (the signed-in user, else the guest cart token, else the client
address) and kept for 24 hours. Server errors (5xx) are not stored, so the client can retry
them, nor is a request refused before its endpoint ran (as Stripe: "if incoming
parameters failed validation ... no idempotent result is saved"): a body that is not
JSON, sent with another Content-Type (415), with an unknown field or a field missing or of
the wrong type, an unknown or repeated query parameter (422 ``validation_error``,
``unknown_field``, ``unknown_parameter``, ``repeated_parameter``). The corrected retry
with the same key then runs, where it met 409 ``idempotency_key_reused``. An endpoint's
own refusals (a weak password, an empty cart) are its answer, and kept.

A first request holds its key by a lease (``LEASE_SECONDS``) that the process running it
renews every third of the lease: a request of any length keeps its key, and the key of a
process that died (a SIGKILLed API replica renews nothing and frees nothing) is free
again one lease later. The lease is a record naming the request (a token); renewing it,
and storing the answer or freeing the key at the end, happen only while the record under
the key is still that one, so a request whose lease lapsed never takes over, extends or
deletes the request that holds the key now.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import re
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.guards import ClientGone
from api.problems import ProblemSpec, problem_response
from core.errors import Conflict, DependencyUnavailable, ShopError

log = logging.getLogger(__name__)

KEEP_SECONDS = 24 * 3600
# How long a first request holds its key without renewing it: how long the key of an API
# process that died stays taken (its clients' retries get 409 meanwhile). A fixed 60 s
# lock made a mobile app's checkout retried after a dropped connection wait a minute for
# nothing; renewed every third of it, a running request keeps its key however long.
LEASE_SECONDS = 10.0
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
# Set in the request's state by the answer to a request whose endpoint never ran
# (``api/errors.py``: the request's own validation, 415 and 422): not kept, so the same
# key with the request sent as it should be runs.
NOTHING_RAN = "idempotency_nothing_ran"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
# What a request with an Idempotency-Key can answer besides the endpoint's own answers.
IDEMPOTENCY_PROBLEMS: tuple[ProblemSpec, ...] = (
    (ShopError, "invalid_idempotency_key"),
    (Conflict, "idempotency_key_reused"),
    (Conflict, "idempotency_key_in_progress"),
    (DependencyUnavailable, "idempotency_unavailable"),
)


# KEYS[1]: the key's record; ARGV: our running record, the lease (ms). Taken, or the record
# that holds the key and how long it has left (ms), read in the same step as the refusal
# (between two commands, a record freed meanwhile read as nothing).
_TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {0, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
"""
# ARGV: our running record, the lease (ms). Extended only while the record is ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# ARGV: our running record, the answer to keep ('' frees the key), how long to keep it (s).
# Not if another request holds the key now (ours lapsed and it was taken); if nobody does,
# the answer is kept all the same: the request ran, its retry is to replay it.
_SETTLE = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
else
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
"""


@dataclass(frozen=True)
class HeldKey:
    """What holds a key another request took: its record (running, or the kept answer) and
    how long it has left (ms; negative if it has no expiry)."""

    record: str
    ttl_ms: int


@dataclass(frozen=True)
class KeyLease:
    """A first request's hold on its key: the running record it wrote, unique to it."""

    redis: Redis
    key: str
    running: str

    @classmethod
    async def take(
        cls, redis: Redis, key: str, fingerprint: str, lease_seconds: float
    ) -> KeyLease | HeldKey:
        running = json.dumps(
            {"state": "running", "fingerprint": fingerprint, "token": uuid.uuid4().hex}
        )
        taken = await redis.eval(_TAKE, 1, key, running, _ms(lease_seconds))
        if int(taken[0]):
            return cls(redis, key, running)
        return HeldKey(record=str(taken[1]), ttl_ms=int(taken[2]))

    async def renew(self, lease_seconds: float) -> bool:
        """One more lease from now; False if the key is no longer ours."""
        return bool(
            int(await self.redis.eval(_RENEW, 1, self.key, self.running, _ms(lease_seconds)))
        )

    async def keep(self, lease_seconds: float) -> None:
        """Renew every third of the lease until cancelled (the request ended) or the key is
        no longer ours."""
        while True:
            await asyncio.sleep(lease_seconds / 3)
            try:
                if not await self.renew(lease_seconds):
                    # Stalled past a whole lease (the event loop, or Redis out of reach).
                    log.warning("an Idempotency-Key's lease lapsed while its request ran")
                    return
            except RedisError as exc:  # tried again in a third of the lease
                log.warning("idempotency key lease not renewed: %s", exc)

    async def settle(self, answer: str | None) -> bool:
        """Keep ``answer`` under the key for ``KEEP_SECONDS``, or free the key (None); False
        (nothing done) if another request holds the key now."""
        settled = await self.redis.eval(
            _SETTLE, 1, self.key, self.running, answer or "", KEEP_SECONDS
        )
        return bool(int(settled))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def retry_after(held: HeldKey) -> int:
    """Seconds until a running request's lease lapses at the latest (its process may have
    died), at least 1."""
    return max(1, math.ceil(held.ttl_ms / 1000)) if held.ttl_ms > 0 else 1


# Answers that carry live credentials (sign-in's tokens, a stream ticket): never stored,
# never replayed (a replayed ticket would be one already spent, and Redis would hold it).
_CREDENTIAL_PATHS = ("/auth/", "/events/stream-tickets")


def applies_to(method: str, path: str, prefix: str = "/api") -> bool:
    """Creating POSTs of the API, but those whose answers carry live credentials."""
    return (
        method == "POST"
        and path.startswith(prefix)
        and not any(path.startswith(prefix + p) for p in _CREDENTIAL_PATHS)
    )


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
        lease_seconds = LEASE_SECONDS
        try:
            owner = await _owner(scope, state)
            redis_key = f"idem:{owner}:{hashlib.sha256(key.encode()).hexdigest()}"
            lease = await KeyLease.take(state.redis, redis_key, fingerprint, lease_seconds)
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
                # As every other outage of a dependency: the same request a moment later.
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        if isinstance(lease, HeldKey):
            await self._answer_existing(scope, receive, send, lease, fingerprint, request_id)
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

        # The app's request state is this dict (Starlette's ``request.state``).
        request_state: dict[str, Any] = scope.setdefault("state", {})
        keeper = asyncio.create_task(lease.keep(lease_seconds))
        try:
            await self.app(scope, replay_body, capture)
        finally:
            keeper.cancel()
            try:
                if captured["status"] >= 500 or request_state.get(NOTHING_RAN, False):
                    await lease.settle(None)
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
                    await lease.settle(json.dumps(record))
            except RedisError:
                pass  # the lease lapses by itself

    async def _answer_existing(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        held: HeldKey,
        fingerprint: str,
        request_id: str | None,
    ) -> None:
        record: dict[str, Any] = json.loads(held.record)
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
                headers={"Retry-After": str(retry_after(held))},
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
