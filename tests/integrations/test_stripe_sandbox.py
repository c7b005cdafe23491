"""The Stripe sandbox through the real ``stripe`` SDK: intents, 3-D Secure, refunds,
idempotency, faults and signed webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import httpx
import pytest
import stripe
import uvicorn
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.client import Client

from api.idempotency import KeyLease
from api.routes.stripe_sandbox_calls import IN_FLIGHT_LEASE_SECONDS
from cli.stack.process import free_port
from core.settings import Settings
from integrations.payments.gateway import PaymentUnavailable
from integrations.payments.stripe import _translate
from integrations.sandbox.stripe import SANDBOX_WEBHOOK_SECRET, StripeSandbox
from tests.live import live_api, send_cut_short
from tests.orders.helpers import eventually

KEY = "sk_test_sandbox"


class Hooks:
    """A stand-in receiver (the shop's own webhook endpoint comes with checkout)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str]] = []

    async def endpoint(self, request: Request) -> Response:
        self.received.append((await request.body(), request.headers.get("stripe-signature", "")))
        return Response(status_code=200)

    def events(self, intent_id: str) -> list[Any]:
        found = []
        for payload, signature in self.received:
            event = stripe.Webhook.construct_event(payload, signature, SANDBOX_WEBHOOK_SECRET)
            if event["data"]["object"]["id"] == intent_id:
                found.append(event)
        return found


@pytest.fixture(scope="module")
async def sandbox(settings: Settings, temporal_client: Client) -> AsyncIterator[tuple[str, Hooks]]:
    hooks = Hooks()
    port = free_port()
    receiver = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hooks", hooks.endpoint, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_config=None,
        )
    )
    task = asyncio.create_task(receiver.serve())
    live = Settings.model_validate(
        settings.model_dump()
        | {"shop_api_port": free_port(), "stripe_webhook_url": f"http://127.0.0.1:{port}/hooks"}
    )
    try:
        async with live_api(live) as base:
            yield f"{base}/_sandbox/stripe", hooks
    finally:
        receiver.should_exit = True
        await task


def _client(base: str) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": base}, max_network_retries=0)


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _wait_for(hooks: Hooks, intent_id: str, kind: str) -> Any:
    for _ in range(100):
        for event in hooks.events(intent_id):
            if event["type"] == kind:
                return event
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} webhook for {intent_id}")


async def test_authorise_then_capture_with_signed_webhooks(sandbox: tuple[str, Hooks]) -> None:
    base, hooks = sandbox
    client = _client(base)
    intent = await _call(
        client.v1.payment_intents.create,
        {
            "amount": 4999,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "capture_method": "manual",
            "metadata": {"order_id": "ord_1"},
        },
    )
    assert intent.status == "requires_capture"
    assert intent.metadata["order_id"] == "ord_1"
    captured = await _call(client.v1.payment_intents.capture, intent.id)
    assert captured.status == "succeeded"
    assert captured.amount_received == 4999
    event = await _wait_for(hooks, intent.id, "payment_intent.succeeded")
    assert event["data"]["object"]["amount_received"] == 4999
    with pytest.raises(stripe.InvalidRequestError) as again:
        await _call(client.v1.payment_intents.capture, intent.id)
    assert again.value.code == "payment_intent_unexpected_state"


@pytest.mark.parametrize(
    ("method", "decline"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_declines_are_card_errors(
    sandbox: tuple[str, Hooks], method: str, decline: str
) -> None:
    base, _ = sandbox
    with pytest.raises(stripe.CardError) as caught:
        await _call(
            _client(base).v1.payment_intents.create,
            {"amount": 100, "currency": "usd", "payment_method": method, "confirm": True},
        )
    assert caught.value.code == "card_declined"
    assert caught.value.error is not None
    assert caught.value.error.decline_code == decline


async def test_three_d_secure_completes_or_fails_on_the_redirect(
    sandbox: tuple[str, Hooks],
) -> None:
    base, hooks = sandbox
    client = _client(base)
    for outcome, final in (("succeed", "requires_capture"), ("fail", "requires_payment_method")):
        intent = await _call(
            client.v1.payment_intents.create,
            {
                "amount": 2500,
                "currency": "eur",
                "payment_method": "pm_card_authenticationRequired",
                "confirm": True,
                "capture_method": "manual",
            },
        )
        assert intent.status == "requires_action"
        url = intent.next_action.redirect_to_url.url
        async with httpx.AsyncClient() as http:
            page = await http.get(url, params={"outcome": outcome})
        assert page.status_code == 200
        assert (await _call(client.v1.payment_intents.retrieve, intent.id)).status == final
        kind = (
            "payment_intent.amount_capturable_updated"
            if outcome == "succeed"
            else "payment_intent.payment_failed"
        )
        await _wait_for(hooks, intent.id, kind)


async def test_refunds_full_and_partial(sandbox: tuple[str, Hooks]) -> None:
    base, _ = sandbox
    client = _client(base)
    intent = await _call(
        client.v1.payment_intents.create,
        {"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
    )
    assert intent.status == "succeeded"
    part = await _call(client.v1.refunds.create, {"payment_intent": intent.id, "amount": 300})
    assert (part.amount, part.status) == (300, "succeeded")
    rest = await _call(client.v1.refunds.create, {"payment_intent": intent.id})
    assert rest.amount == 700
    with pytest.raises(stripe.InvalidRequestError):
        await _call(client.v1.refunds.create, {"payment_intent": intent.id, "amount": 1})


async def test_idempotency_rules(sandbox: tuple[str, Hooks]) -> None:
    base, _ = sandbox
    client = _client(base)
    key = f"ord_{uuid4().hex[:8]}:authorize"
    params = {
        "amount": 700,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
        "capture_method": "manual",
    }
    first = await _call(client.v1.payment_intents.create, params, {"idempotency_key": key})
    second = await _call(client.v1.payment_intents.create, params, {"idempotency_key": key})
    assert first.id == second.id
    with pytest.raises(stripe.IdempotencyError):
        await _call(
            client.v1.payment_intents.create, params | {"amount": 701}, {"idempotency_key": key}
        )
    listed = await _call(client.v1.payment_intents.list, {"limit": 100})
    assert sum(1 for i in listed.data if i.id == first.id) == 1


async def test_a_body_cut_short_by_a_lost_client_never_runs(sandbox: tuple[str, Hooks]) -> None:
    """A worker killed while sending its create: the half that arrived is not the request.
    Run, it made a PaymentIntent of its own or failed validation, and its answer was kept
    under the key, so the retry with the whole request was refused as other parameters (an
    order failed with ``payment_error`` after a worker crash)."""
    base, _ = sandbox
    key = f"ord_{uuid4().hex[:8]}:create"
    # The half that arrives is a valid create of its own (amount and currency come first).
    params = {
        "amount": 700,
        "currency": "usd",
        "capture_method": "manual",
        "payment_method": "pm_card_visa",
    }
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Idempotency-Key": key,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    path = httpx.URL(f"{base}/v1/payment_intents").path
    await send_cut_short(base, path, headers, urlencode(params).encode())
    intent = await _call(_client(base).v1.payment_intents.create, params, {"idempotency_key": key})
    assert (intent.amount, intent.status) == (700, "requires_confirmation")


async def test_parameters_that_failed_validation_keep_no_answer(
    sandbox: tuple[str, Hooks],
) -> None:
    """As Stripe: no answer is kept for a request refused before its endpoint began, so
    the request sent as meant runs under the same key (while another request's answer,
    once run, is kept: ``test_idempotency_rules``)."""
    base, _ = sandbox
    client = _client(base)
    key = f"ord_{uuid4().hex[:8]}:create"
    params = {"currency": "usd", "payment_method": "pm_card_visa", "capture_method": "manual"}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await _call(client.v1.payment_intents.create, params, {"idempotency_key": key})
    assert refused.value.param == "amount"
    intent = await _call(
        client.v1.payment_intents.create, params | {"amount": 700}, {"idempotency_key": key}
    )
    again = await _call(
        client.v1.payment_intents.create, params | {"amount": 700}, {"idempotency_key": key}
    )
    assert intent.id == again.id


async def test_an_intent_below_stripes_minimum_charge_is_refused(
    sandbox: tuple[str, Hooks],
) -> None:
    """As Stripe: 0.50 USD at least (0.30 GBP); below it, ``amount_too_small``."""
    base, _ = sandbox
    client = _client(base)
    params = {"payment_method": "pm_card_visa", "capture_method": "manual"}
    for amount, currency in ((49, "usd"), (29, "gbp"), (0, "usd")):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await _call(
                client.v1.payment_intents.create,
                params | {"amount": amount, "currency": currency},
            )
        assert (refused.value.code, refused.value.param) == ("amount_too_small", "amount")
    for amount, currency in ((50, "usd"), (30, "gbp")):
        intent = await _call(
            client.v1.payment_intents.create, params | {"amount": amount, "currency": currency}
        )
        assert intent.amount == amount


async def test_bad_keys_and_faults(sandbox: tuple[str, Hooks]) -> None:
    base, _ = sandbox
    bad = stripe.StripeClient("sk_live_nope", base_addresses={"api": base}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        await _call(bad.v1.payment_intents.list)
    control = base
    async with httpx.AsyncClient() as http:
        assert (await http.put(f"{control}/faults", json={"status": 503})).status_code == 204
        try:
            assert (await http.get(f"{control}/faults")).json() == {
                "failureRate": 0.0,
                "latencyMs": 0,
                "status": 503,
                "timeout": False,
                "lostAnswerRate": 0.0,
            }
            with pytest.raises(stripe.APIError):
                await _call(_client(base).v1.payment_intents.list)
        finally:
            assert (await http.delete(f"{control}/faults")).status_code == 204
        assert (await http.get(f"{control}/faults")).json()["status"] is None
    assert (await _call(_client(base).v1.payment_intents.list)).object == "list"


async def test_a_lost_answer_took_effect_and_its_retry_is_answered_with_it(
    sandbox: tuple[str, Hooks],
) -> None:
    """``lostAnswerRate``: the call takes effect, then answers 500. Sent again with its key
    (the SDK's retry, a retried activity) it is answered with what it did: one
    PaymentIntent, one capture."""
    base, _ = sandbox
    client = _client(base)
    key = f"ord_{uuid4().hex[:8]}"
    params = {"amount": 900, "currency": "usd", "payment_method": "pm_card_visa"}
    params |= {"confirm": True, "capture_method": "manual", "metadata": {"order_id": key}}
    async with httpx.AsyncClient() as http:
        await http.put(f"{base}/faults", json={"lostAnswerRate": 1})
        try:
            with pytest.raises(stripe.APIError):
                await _call(client.v1.payment_intents.create, params, {"idempotency_key": key})
        finally:
            await http.delete(f"{base}/faults")
    listed = await _call(client.v1.payment_intents.list, {"limit": 100})
    [lost] = [
        i for i in listed.data if i.metadata.to_dict().get("order_id") == key
    ]  # it took effect
    made = await _call(client.v1.payment_intents.create, params, {"idempotency_key": key})
    assert (made.id, made.status) == (lost.id, "requires_capture")
    listed = await _call(client.v1.payment_intents.list, {"limit": 100})
    assert sum(1 for i in listed.data if i.metadata.to_dict().get("order_id") == key) == 1
    async with httpx.AsyncClient() as http:
        await http.put(f"{base}/faults", json={"lostAnswerRate": 1})
        try:
            with pytest.raises(stripe.APIError):
                await _call(
                    client.v1.payment_intents.capture, made.id, {}, {"idempotency_key": f"{key}:c"}
                )
        finally:
            await http.delete(f"{base}/faults")
    captured = await _call(
        client.v1.payment_intents.capture, made.id, {}, {"idempotency_key": f"{key}:c"}
    )
    assert (captured.status, captured.amount_received) == ("succeeded", 900)


async def test_list_pages_newest_first(sandbox: tuple[str, Hooks]) -> None:
    base, _ = sandbox
    client = _client(base)
    made = [
        (await _call(client.v1.payment_intents.create, {"amount": 100 + i, "currency": "usd"})).id
        for i in range(3)
    ]
    page = await _call(client.v1.payment_intents.list, {"limit": 2})
    assert [i.id for i in page.data] == [made[2], made[1]]
    assert page.has_more is True
    after = await _call(client.v1.payment_intents.list, {"limit": 1, "starting_after": made[1]})
    assert [i.id for i in after.data] == [made[0]]


def test_webhook_signatures_verify_with_the_sdk() -> None:
    from integrations.sandbox.stripe_objects import sign

    payload = json.dumps({"id": "evt_1", "object": "event", "type": "x", "data": {"object": {}}})
    event = stripe.Webhook.construct_event(payload, sign(payload, "whsec_x"), "whsec_x")
    assert event["id"] == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, sign(payload, "whsec_other"), "whsec_x")


async def test_a_key_still_in_flight_answers_409(sandbox: tuple[str, Hooks], redis: Redis) -> None:
    base, _ = sandbox
    key = f"ord_{uuid4().hex[:8]}:create"
    in_flight = _in_flight(key)
    body = {"amount": "700", "currency": "usd", "payment_method": "pm_card_visa"}
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": key}
    async with httpx.AsyncClient(base_url=base) as http:
        await redis.set(in_flight, "1", ex=30)  # another request with this key is running
        busy = await http.post("/v1/payment_intents", data=body, headers=headers)
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "idempotency_key_in_use"
        await redis.delete(in_flight)
        created = await http.post("/v1/payment_intents", data=body, headers=headers)
        assert created.status_code == 200
        assert await redis.get(in_flight) is None  # released once committed
        replay = await http.post("/v1/payment_intents", data=body, headers=headers)
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.json()["id"] == created.json()["id"]
    # ... and the adapter treats such a 409 as worth retrying.
    assert isinstance(
        _translate(stripe.IdempotencyError("in use", http_status=409)), PaymentUnavailable
    )


async def test_a_running_request_keeps_its_key_and_a_dead_one_frees_it_soon(
    sandbox: tuple[str, Hooks], redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-flight mark is a lease renewed while its request runs (``KeyLease``, as the
    API's own Idempotency-Key): a concurrent request with the key gets 409
    ``idempotency_key_in_use`` however long the first one runs, and the key of a process
    that died (its lease never renewed) is free again within ``IN_FLIGHT_LEASE_SECONDS``.
    Before, a fixed 30 s mark: a request running longer lost its key to a retry (which
    ran it again), and a dead process's key answered 409 for 30 s."""
    base, _ = sandbox
    key = f"ord_{uuid4().hex[:8]}:create"
    in_flight = _in_flight(key)
    body = {"amount": "700", "currency": "usd", "payment_method": "pm_card_visa"}
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": key}
    gate = asyncio.Event()
    create = StripeSandbox.create_intent

    async def slow_create(self: StripeSandbox, params: dict[str, Any]) -> dict[str, Any]:
        await gate.wait()  # a request that runs as long as the test says
        return await create(self, params)

    monkeypatch.setattr(StripeSandbox, "create_intent", slow_create)
    lease_ms = IN_FLIGHT_LEASE_SECONDS * 1000
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        first = asyncio.create_task(http.post("/v1/payment_intents", data=body, headers=headers))
        try:
            await eventually(lambda: _ttl(redis, in_flight, above=0))
            held = await redis.pttl(in_flight)
            assert 0 < held <= lease_ms, held  # a lease, not a 30 s mark
            # Renewed while the request runs: it holds its key past its first lease.
            await eventually(lambda: _ttl(redis, in_flight, above=held), within=lease_ms / 1000)
            busy = await http.post("/v1/payment_intents", data=body, headers=headers)
            assert (busy.status_code, busy.json()["error"]["code"]) == (
                409,
                "idempotency_key_in_use",
            )
        finally:
            gate.set()
        created = await first
        assert created.status_code == 200, created.text
        assert await redis.get(in_flight) is None  # freed once committed
        replay = await http.post("/v1/payment_intents", data=body, headers=headers)
        assert replay.json()["id"] == created.json()["id"]

        # A process that took a key and died: its lease is never renewed nor freed.
        dead = f"ord_{uuid4().hex[:8]}:create"
        dead_flight = _in_flight(dead)
        taken = await KeyLease.take(redis, dead_flight, "fp", IN_FLIGHT_LEASE_SECONDS)
        assert isinstance(taken, KeyLease)
        retry = headers | {"Idempotency-Key": dead}
        refused = await http.post("/v1/payment_intents", data=body, headers=retry)
        assert refused.status_code == 409

        async def runs() -> bool:
            answer = await http.post("/v1/payment_intents", data=body, headers=retry)
            return answer.status_code == 200

        await eventually(runs, within=IN_FLIGHT_LEASE_SECONDS + 5)


def _in_flight(key: str) -> str:
    """The Redis key of the in-flight lease of ``key`` (an Idempotency-Key) under ``KEY``."""
    scope = hashlib.sha256(KEY.encode()).hexdigest()[:16]
    return f"sandbox:stripe:idem:{scope}:{key}:inflight"


async def _ttl(redis: Redis, key: str, *, above: int) -> bool:
    return int(await redis.pttl(key)) > above


async def test_the_key_may_come_as_http_basic_auth(sandbox: tuple[str, Hooks]) -> None:
    """`curl -u sk_test_…:` (Stripe's docs) works as well as a bearer token."""
    base, _ = sandbox
    body = {"amount": "700", "currency": "usd", "payment_method": "pm_card_visa"}
    async with httpx.AsyncClient(base_url=base) as http:
        created = await http.post("/v1/payment_intents", data=body, auth=(KEY, ""))
        assert created.status_code == 200, created.text
        fetched = await http.get(f"/v1/payment_intents/{created.json()['id']}", auth=(KEY, ""))
        assert fetched.json()["amount"] == 700
        wrong = await http.get("/v1/payment_intents", auth=("pk_live_nope", ""))
        assert wrong.status_code == 401
        assert wrong.json()["error"]["type"] == "invalid_request_error"


async def test_the_three_d_secure_page_tells_what_became_of_the_payment(
    sandbox: tuple[str, Hooks],
) -> None:
    base, _ = sandbox
    client = _client(base)
    pages = []
    for cancel_first, outcome in ((False, "succeed"), (False, "fail"), (True, "succeed")):
        intent = await _call(
            client.v1.payment_intents.create,
            {
                "amount": 900,
                "currency": "usd",
                "payment_method": "pm_card_authenticationRequired",
                "confirm": True,
                "capture_method": "manual",
            },
        )
        if cancel_first:  # the order was cancelled while the customer was away
            await _call(client.v1.payment_intents.cancel, intent.id)
        async with httpx.AsyncClient() as http:
            page = await http.get(
                intent.next_action.redirect_to_url.url, params={"outcome": outcome}
            )
        pages.append(page.text)
    assert "Authentication complete" in pages[0]
    assert "authorised" in pages[0]
    assert "Authentication failed" in pages[1]
    assert "was cancelled" in pages[2]
    assert "Authentication complete" not in pages[2]


async def test_a_key_sent_again_and_again_runs_its_request_once(
    sandbox: tuple[str, Hooks],
) -> None:
    """A retry that comes just as the first request finishes gets its answer, never a run
    of its own: each key below is sent by eight clients at once, each again after every
    409, and only one PaymentIntent is made per key."""
    base, _ = sandbox
    headers = {"Authorization": f"Bearer {KEY}"}
    tag = uuid4().hex[:8]

    async def until_answered(http: httpx.AsyncClient, n: int) -> str:
        body = {"amount": "700", "currency": "usd", "metadata[order_id]": f"ord_{tag}_{n}"}
        while True:
            answer = await http.post(
                "/v1/payment_intents",
                data=body,
                headers=headers | {"Idempotency-Key": f"ord_{tag}_{n}:create"},
            )
            if answer.status_code != 409:
                assert answer.status_code == 200, answer.text
                return str(answer.json()["id"])

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for n in range(10):
            ids = await asyncio.gather(*(until_answered(http, n) for _ in range(8)))
            assert len(set(ids)) == 1, (n, ids)
    listed = await _call(_client(base).v1.payment_intents.list, {"limit": 100})
    made = [
        i.id
        for i in listed.data
        if str(i.to_dict()["metadata"].get("order_id", "")).startswith(f"ord_{tag}_")
    ]
    assert len(made) == 10


async def test_a_request_that_failed_frees_its_key_at_once(sandbox: tuple[str, Hooks]) -> None:
    """A request the sandbox could not handle (a 500, its change rolled back) did nothing:
    its retry runs again instead of being told for 30 s that it is still in flight."""
    base, _ = sandbox
    intent = await _call(
        _client(base).v1.payment_intents.create,
        {
            "amount": 700,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "confirm": True,
        },
    )
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": f"{intent.id}:capture"}
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(2):
            failed = await http.post(
                f"/v1/payment_intents/{intent.id}/capture",
                data={"amount_to_capture": "not a number"},
                headers=headers,
            )
            assert failed.status_code == 500, failed.text


async def test_only_the_events_the_endpoint_is_subscribed_to_are_sent(
    sandbox: tuple[str, Hooks], settings: Settings
) -> None:
    """As Stripe sends an endpoint only its ``enabled_events``: by default not
    ``payment_intent.created``, which nothing waits for (issue #15: one webhook of the
    three each order made the API send and receive)."""
    base, hooks = sandbox
    assert "payment_intent.created" not in settings.stripe_webhook_events
    intent = await _call(
        _client(base).v1.payment_intents.create,
        {
            "amount": 1200,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "capture_method": "manual",
        },
    )
    await _wait_for(hooks, intent.id, "payment_intent.amount_capturable_updated")
    assert [e["type"] for e in hooks.events(intent.id)] == [
        "payment_intent.amount_capturable_updated"
    ]


async def test_an_endpoint_subscribed_to_everything_gets_every_event(
    db_session: AsyncSession,
) -> None:
    every = StripeSandbox(db_session, base_url="http://sandbox", webhook_secret="whsec_x")
    await every.create_intent(
        {"amount": "100", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
    )
    assert [json.loads(e.payload)["type"] for e in every.events] == [
        "payment_intent.created",
        "payment_intent.succeeded",
    ]
    some = StripeSandbox(
        db_session,
        base_url="http://sandbox",
        webhook_secret="whsec_x",
        enabled_events={"payment_intent.succeeded"},
    )
    await some.create_intent(
        {"amount": "100", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
    )
    assert [json.loads(e.payload)["type"] for e in some.events] == ["payment_intent.succeeded"]


async def test_an_answer_commits_with_its_change(sandbox: tuple[str, Hooks], redis: Redis) -> None:
    """An API process SIGKILLed after its request committed, before its after-commit step,
    leaves the change and its answer: the retry, once the in-flight mark has lapsed, is
    answered with it. Before, the answer was kept in Redis after the commit, so such a
    retry ran the request again: two PaymentIntents for one order in a chaos run."""
    base, _ = sandbox
    key = f"ord_{uuid4().hex[:8]}:create"
    scope = hashlib.sha256(KEY.encode()).hexdigest()[:16]
    body = {"amount": "700", "currency": "usd", "payment_method": "pm_card_visa"}
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": key}
    async with httpx.AsyncClient(base_url=base) as http:
        created = await http.post("/v1/payment_intents", data=body, headers=headers)
        assert created.status_code == 200
        # What the killed process would have left in Redis: nothing (its mark lapsed).
        await redis.delete(
            f"sandbox:stripe:idem:{scope}:{key}", f"sandbox:stripe:idem:{scope}:{key}:inflight"
        )
        retried = await http.post("/v1/payment_intents", data=body, headers=headers)
    assert retried.status_code == 200
    assert retried.headers.get("Idempotent-Replayed") == "true"
    assert retried.json()["id"] == created.json()["id"]
