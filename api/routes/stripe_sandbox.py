"""The Stripe sandbox over HTTP: ``/_sandbox/stripe/v1/…`` in Stripe's wire format.

Stripe's idempotency rules apply (``Idempotency-Key``: the same parameters replay the
first answer, other parameters are a 400 ``idempotency_error``; no answer is kept for
parameters that failed validation), API keys must look like
``sk_test_…``, and webhooks are signed as Stripe signs them. Fault switches: a failure
rate, added latency, a forced 5xx status, timeouts and lost answers (the call takes
effect, then answers 500); ``POST …/refunds/{id}/fail`` fails
a refund as a card's bank does, later.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import DbSession, RedisClient, State
from api.routes.stripe_sandbox_calls import (
    FAULTS_KEY,
    StripeFaults,
    answer_call,
    error_response,
    sandbox_for,
    send_webhooks_after_commit,
)
from integrations.sandbox.stripe_objects import StripeError

router = APIRouter(prefix="/_sandbox/stripe", tags=["sandbox"])


@router.get("/faults", response_model=StripeFaults, summary="Stripe sandbox: the fault switches")
async def get_faults(redis: RedisClient) -> StripeFaults:
    """What `PUT /_sandbox/stripe/faults` set (all off after `DELETE`), as the HubSpot and
    EasyPost sandboxes answer theirs."""
    return StripeFaults.model_validate_json(await redis.get(FAULTS_KEY) or "{}")


@router.put(
    "/faults", status_code=204, response_class=Response, summary="Stripe sandbox: fault switches"
)
async def set_faults(body: StripeFaults, redis: RedisClient) -> Response:
    """Make the sandbox flaky: a failure rate, latency, a fixed 5xx, timeouts, or lost
    answers (`lostAnswerRate`: the call takes effect, then answers 500)."""
    await redis.set(FAULTS_KEY, body.model_dump_json())
    return Response(status_code=204)


@router.delete(
    "/faults", status_code=204, response_class=Response, summary="Stripe sandbox: clear faults"
)
async def clear_faults(redis: RedisClient) -> Response:
    """Back to normal service."""
    await redis.delete(FAULTS_KEY)
    return Response(status_code=204)


@router.post("/v1/payment_intents", summary="Stripe sandbox: create a PaymentIntent")
async def create_intent(
    request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """Stripe's `POST /v1/payment_intents`, with `confirm=true` support."""
    return await answer_call(request, state, session, redis, lambda s, p: s.create_intent(p))


@router.post("/v1/payment_intents/{intent_id}/confirm", summary="Stripe sandbox: confirm")
async def confirm(
    intent_id: str, request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """Declines answer 402 `card_error`; `pm_card_authenticationRequired` needs 3-D Secure."""
    return await answer_call(request, state, session, redis, lambda s, p: s.confirm(intent_id, p))


@router.post("/v1/payment_intents/{intent_id}/capture", summary="Stripe sandbox: capture")
async def capture(
    intent_id: str, request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """Only from `requires_capture`."""
    return await answer_call(request, state, session, redis, lambda s, p: s.capture(intent_id, p))


@router.post("/v1/payment_intents/{intent_id}/cancel", summary="Stripe sandbox: cancel")
async def cancel(
    intent_id: str, request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """Voids an authorisation; not after success."""
    return await answer_call(request, state, session, redis, lambda s, p: s.cancel(intent_id, p))


@router.get("/v1/payment_intents/{intent_id}", summary="Stripe sandbox: retrieve")
async def retrieve(
    intent_id: str, request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """One PaymentIntent."""
    return await answer_call(request, state, session, redis, lambda s, p: s.retrieve(intent_id))


@router.get("/v1/payment_intents", summary="Stripe sandbox: list PaymentIntents")
async def list_intents(
    request: Request,
    state: State,
    session: DbSession,
    redis: RedisClient,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: str | None = None,
) -> Response:
    """Newest first, with `has_more` and `starting_after` paging."""
    return await answer_call(
        request, state, session, redis, lambda s, p: s.list_intents(limit, starting_after)
    )


@router.post("/v1/refunds", summary="Stripe sandbox: refund")
async def refund(
    request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """Full or partial, never more than was received."""
    return await answer_call(request, state, session, redis, lambda s, p: s.refund(p))


@router.get("/v1/refunds", summary="Stripe sandbox: list a PaymentIntent's refunds")
async def list_refunds(
    request: Request,
    state: State,
    session: DbSession,
    redis: RedisClient,
    payment_intent: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response:
    """`payment_intent` is required here; newest first."""
    return await answer_call(
        request, state, session, redis, lambda s, p: s.list_refunds(payment_intent, limit)
    )


@router.get("/v1/refunds/{refund_id}", summary="Stripe sandbox: retrieve a refund")
async def retrieve_refund(
    refund_id: str, request: Request, state: State, session: DbSession, redis: RedisClient
) -> Response:
    """One refund, as it stands now (`failed`, with `failure_reason`, once it bounced)."""
    return await answer_call(
        request, state, session, redis, lambda s, p: s.retrieve_refund(refund_id)
    )


@router.post("/refunds/{refund_id}/fail", summary="Stripe sandbox: a refund fails")
async def fail_refund(
    refund_id: str,
    state: State,
    session: DbSession,
    reason: Annotated[
        str, Query(pattern="^(expired_or_canceled_card|lost_or_stolen_card|unknown)$")
    ] = "expired_or_canceled_card",
) -> JSONResponse:
    """What Stripe's test card `4000000000005126` does some time after a refund: the
    card's bank sends it back. The refund becomes `failed` with `failure_reason`, its
    money can be refunded again, and the signed `refund.failed` webhook is sent."""
    sandbox = sandbox_for(state, session)
    try:
        refund = await sandbox.fail_refund(refund_id, reason)
    except StripeError as exc:
        return error_response(exc.status, exc.error)
    send_webhooks_after_commit(state, session, sandbox)
    return JSONResponse(refund)


@router.get(
    "/3ds/{intent_id}", summary="Stripe sandbox: 3-D Secure page", response_class=HTMLResponse
)
async def three_d_secure(
    intent_id: str,
    state: State,
    session: DbSession,
    outcome: Annotated[str, Query(pattern="^(succeed|fail)$")] = "succeed",
) -> HTMLResponse:
    """Visiting it completes the customer's authentication (`?outcome=fail` fails it);
    the sandbox then sends the signed webhook, as Stripe does."""
    sandbox = sandbox_for(state, session)
    try:
        intent = await sandbox.authenticate(intent_id, outcome == "succeed")
    except StripeError as exc:
        return HTMLResponse(f"<p>{exc.error.get('message')}</p>", status_code=exc.status)
    send_webhooks_after_commit(state, session, sandbox)
    return HTMLResponse(
        f"<!doctype html><title>3-D Secure</title><p>{_authentication_outcome(intent, outcome)}</p>"
    )


def _authentication_outcome(intent: dict[str, Any], outcome: str) -> str:
    """What the customer reads: what became of the payment, not only of the challenge."""
    match intent["status"]:
        case "canceled":
            return f"This payment ({intent['id']}) was cancelled; nothing was charged."
        case "requires_capture" | "succeeded" | "processing":
            return f"Authentication complete: payment {intent['id']} is authorised."
        case _ if outcome == "fail":
            return f"Authentication failed: payment {intent['id']} was not authorised."
        case status:
            return f"Payment {intent['id']} is {status}."
