"""How a call to the Stripe sandbox is answered, as Stripe answers it: the API key
checked, the fault switches applied, Stripe's idempotency rules (``Idempotency-Key``: the
same parameters replay the first answer, other parameters are a 400
``idempotency_error``, a key in use a 409; no answer is kept for parameters that failed
validation), and the signed webhooks sent once the change has committed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from api.deps import DbSession, RedisClient, State, after_commit
from api.idempotency import KeyLease
from integrations.sandbox.credentials import api_key
from integrations.sandbox.stripe import SANDBOX_WEBHOOK_SECRET, StripeSandbox, parse_form
from integrations.sandbox.stripe_objects import Event, StripeError
from integrations.sandbox.webhooks import Delivery, deliver_later
from models.base import CamelModel

FAULTS_KEY = "sandbox:stripe:faults"
# How long a request with an Idempotency-Key holds its key without renewing it (renewed
# every third of it while it runs, ``api.idempotency.KeyLease``): a request of any length
# keeps its key, and the key of an API process that died is free again within it. A fixed
# 30 s mark did neither: a request running longer lost its key to a retry (two runs of
# one key), and a dead process's key answered 409 for 30 s.
IN_FLIGHT_LEASE_SECONDS = 5.0


def error_response(status_code: int, error: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status_code)


class StripeFaults(CamelModel):
    failure_rate: float = Field(default=0, ge=0, le=1, description="Share of calls that 500")
    latency_ms: int = Field(default=0, ge=0, le=30_000)
    status: int | None = Field(default=None, ge=500, le=599, description="Every call answers this")
    timeout: bool = Field(default=False, description="Calls hang for 30 s before answering")
    lost_answer_rate: float = Field(
        default=0,
        ge=0,
        le=1,
        description="Share of calls that take effect but answer 500, as when the answer "
        "was lost on the way back (a retry with the key is answered with the first answer)",
    )


def _deliver_later(http: httpx.AsyncClient, url: str, events: list[Event]) -> None:
    """Webhooks go out in the background, after the change committed, as Stripe's do."""
    deliveries: list[Delivery] = [
        (e.payload, {"Content-Type": "application/json", "Stripe-Signature": e.signature})
        for e in events
    ]
    deliver_later(http, url, deliveries, provider="stripe")


def sandbox_for(state: State, session: DbSession) -> StripeSandbox:
    return StripeSandbox(
        session,
        base_url=f"{state.settings.api_base_url}/_sandbox/stripe",
        webhook_secret=state.settings.resolved_stripe_webhook_secret or SANDBOX_WEBHOOK_SECRET,
        enabled_events=state.settings.stripe_webhook_events,
    )


def send_webhooks_after_commit(state: State, session: DbSession, sandbox: StripeSandbox) -> None:
    if not sandbox.events:
        return
    events, url = list(sandbox.events), state.settings.resolved_stripe_webhook_url

    async def send_webhooks() -> None:
        _deliver_later(state.http, url, events)

    after_commit(session, send_webhooks)


def _failed_validation(status: int, body: dict[str, Any]) -> bool:
    """An ``invalid_request_error`` that names a parameter: the request was refused before
    anything ran."""
    error = body.get("error") or {}
    refused = error.get("type") == "invalid_request_error" and bool(error.get("param"))
    return status == 400 and refused


Handler = Callable[[StripeSandbox, dict[str, Any]], Awaitable[dict[str, Any]]]


async def answer_call(
    request: Request,
    state: State,
    session: DbSession,
    redis: RedisClient,
    handler: Handler,
) -> Response:
    key = api_key(request.headers.get("authorization", ""))
    if not key.startswith(("sk_test_", "rk_test_")):
        return error_response(
            401,
            {"type": "invalid_request_error", "message": f"Invalid API Key provided: {key[:8]}***"},
        )
    faults = StripeFaults.model_validate_json(await redis.get(FAULTS_KEY) or "{}")
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.timeout:
        await asyncio.sleep(30)
    if faults.status or (faults.failure_rate and random.random() < faults.failure_rate):
        failure = {"type": "api_error", "message": "Sandbox fault: injected failure."}
        return error_response(faults.status or 500, failure)

    # Stripe clients send application/x-www-form-urlencoded bodies.
    params = parse_form(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    params.update(parse_form(list(request.query_params.multi_items())))
    idempotency_key = request.headers.get("idempotency-key")
    sandbox = sandbox_for(state, session)
    record_key = None
    fingerprint = hashlib.sha256(
        json.dumps([request.url.path, params], sort_keys=True, default=str).encode()
    ).hexdigest()
    lease: KeyLease | None = None
    if idempotency_key and request.method == "POST":
        scope = hashlib.sha256(key.encode()).hexdigest()[:16]
        record_key = f"sandbox:stripe:idem:{scope}:{idempotency_key}"
        # The in-flight lease first, the stored answer second: a first request stores its
        # answer before it frees the lease, so whoever holds the lease and finds no answer
        # is the only one to run the request. (Looking first left a gap: the answer
        # stored and the lease freed between the look and the lease, and the request ran
        # twice, e.g. two PaymentIntents for one key.)
        taken = await KeyLease.take(
            redis, f"{record_key}:inflight", fingerprint, IN_FLIGHT_LEASE_SECONDS
        )
        lease = taken if isinstance(taken, KeyLease) else None
        record = await sandbox.kept_answer(record_key)
        if record is not None:
            if lease is not None:
                await lease.settle(None)
            if record["fingerprint"] != fingerprint:
                return error_response(
                    400,
                    {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with. Try using a key other than "
                        f"'{idempotency_key}' if you meant to execute a different request.",
                    },
                )
            return JSONResponse(
                record["body"],
                status_code=record["status"],
                headers={"Idempotent-Replayed": "true"},
            )
        # Another request with this key still running: Stripe answers 409 (and its SDK
        # retries). Held until that one's change is committed, or (its process died) until
        # its lease lapses.
        if lease is None:
            return error_response(
                409,
                {
                    "type": "idempotency_error",
                    "code": "idempotency_key_in_use",
                    "message": "There is currently another in-progress request using this "
                    f"idempotency key ('{idempotency_key}'). Try again later.",
                },
            )

    keeper = asyncio.create_task(_hold(lease, session)) if lease is not None else None
    try:
        try:
            body, code = await handler(sandbox, params), 200
        except StripeError as exc:
            body, code = {"error": exc.error}, exc.status
    except BaseException:
        # Rolled back: nothing happened, so a retry with the key may run at once.
        await _free(lease, keeper)
        raise
    if lease is not None and _failed_validation(code, body):
        # Stripe keeps no answer for a request whose parameters failed validation (its
        # endpoint never began): the key stays free for the request sent as meant.
        await _free(lease, keeper)
    elif record_key is not None and lease is not None:
        # The answer commits with the change (only a committed answer is replayed, and a
        # committed change always has its answer); the lease is freed after the commit
        # (or, if the commit fails, by its keeper once the transaction is over).
        await sandbox.keep_answer(
            record_key, {"fingerprint": fingerprint, "status": code, "body": body}
        )
        held = lease

        async def unmark() -> None:
            await _free(held, keeper)

        after_commit(session, unmark)
    send_webhooks_after_commit(state, session, sandbox)
    if faults.lost_answer_rate and random.random() < faults.lost_answer_rate:
        # The change stands (the request still commits, its answer kept under its key);
        # only the answer is lost.
        return error_response(500, {"type": "api_error", "message": "Sandbox fault: answer lost."})
    return JSONResponse(
        body, status_code=code, headers={"Request-Id": f"req_{random.getrandbits(48):x}"}
    )


async def _hold(lease: KeyLease, session: DbSession) -> None:
    """Renew ``lease`` while its request's transaction is open; once it is over (committed,
    or rolled back by a failed commit, which runs no after-commit action), free the key."""
    ended = asyncio.Event()

    def transaction_ended(_: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the request's own, not a savepoint in it
            ended.set()

    event.listen(session.sync_session, "after_transaction_end", transaction_ended)
    renewing = asyncio.create_task(lease.keep(IN_FLIGHT_LEASE_SECONDS))
    try:
        await ended.wait()
    finally:
        renewing.cancel()
        event.remove(session.sync_session, "after_transaction_end", transaction_ended)
    await lease.settle(None)


async def _free(lease: KeyLease | None, keeper: asyncio.Task[None] | None) -> None:
    """The request is over: stop renewing its lease and free its key."""
    if keeper is not None:
        keeper.cancel()
    if lease is not None:
        await lease.settle(None)
