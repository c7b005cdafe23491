"""The EasyPost sandbox's trackers: moved by hand along the normal path and into
exceptions, auto-advanced once a step even with two API processes, each move sent as a
signed ``tracker.updated`` webhook that ``verify_webhook`` accepts (twice under the
duplicate fault)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from api.routes.easypost_sandbox import AUTO_ADVANCE_KEY
from cli.stack.process import free_port
from core.db import create_session_factory
from core.ids import IdPrefix, new_id
from core.settings import SANDBOX_EASYPOST_WEBHOOK_SECRET, Settings
from integrations.sandbox.easypost import EasyPostSandbox
from integrations.shipping.provider import CarrierStatus, Label
from models.base import utcnow
from models.easypost_sandbox import SandboxEasyPostObject
from tests.integrations.easypost_live import (
    AUTH,
    EasyPostStack,
    advance,
    easypost_stack,
    shipment_request,
)
from tests.live import live_api

PATH = [
    CarrierStatus.PRE_TRANSIT,
    CarrierStatus.IN_TRANSIT,
    CarrierStatus.OUT_FOR_DELIVERY,
    CarrierStatus.DELIVERED,
]


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[EasyPostStack]:
    async with easypost_stack(settings) as live:
        yield live


@pytest.fixture
async def sandbox(stack: EasyPostStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.sandbox_url, headers=AUTH, timeout=30) as http:
        yield http
        await http.delete("/faults")
        await http.delete("/auto-advance")


async def _label(stack: EasyPostStack) -> Label:
    provider = stack.provider()
    reference = new_id(IdPrefix.ORDER).replace("ord_", "shpm_")
    created = await provider.create_shipment(shipment_request(reference))
    return await provider.buy_label(created.provider_shipment_id)


async def test_a_tracker_walks_the_normal_path_by_hand(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    label = await _label(stack)
    assert label.tracker_id is not None
    for expected in PATH[1:]:
        moved = await advance(sandbox, label.tracker_id)
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == expected.value

    tracker = await stack.provider().get_tracker(label.tracker_id)
    assert tracker.status is CarrierStatus.DELIVERED
    assert [d.status for d in tracker.details] == PATH
    assert tracker.details[1].location == "Boston, MA, 02118, US"
    assert tracker.details[-1].location == "San Francisco, CA, 94105, US"
    assert tracker.details[-1].message == "Delivered, In/At Mailbox"

    finished = await advance(sandbox, label.tracker_id)
    assert finished.status_code == 409
    assert finished.json()["code"] == "tracker_cannot_move"

    # Every move went out as a signed tracker.updated carrying the whole history.
    hooks = await stack.hooks.wait_for(label.tracker_id, 3)
    provider = stack.provider()
    verified = [provider.verify_webhook(body, headers) for body, headers in hooks]
    assert all(v is not None for v in verified)
    events = [v for v in verified if v is not None]
    assert len({e.event_id for e in events}) == 3
    assert [e.tracker.status for e in events] == PATH[1:]
    assert [len(e.tracker.details) for e in events] == [2, 3, 4]
    first = json.loads(hooks[0][0])
    assert first["object"] == "Event"
    assert first["description"] == "tracker.updated"
    assert first["previous_attributes"] == {"status": "pre_transit"}
    assert first["id"].startswith("evt_")


async def test_exceptions_with_the_carriers_words(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    label = await _label(stack)
    assert label.tracker_id is not None
    await advance(sandbox, label.tracker_id)
    failed = await advance(
        sandbox,
        label.tracker_id,
        {"status": "failure", "message": "Address not accessible", "location": "Memphis, TN"},
    )
    assert failed.status_code == 200, failed.text
    stuck = await advance(sandbox, label.tracker_id)
    assert stuck.status_code == 409  # a failure has no next normal status

    returned = await advance(
        sandbox,
        label.tracker_id,
        {"status": "return_to_sender", "location": "Memphis, TN, 38118, US"},
    )
    assert returned.status_code == 200, returned.text
    tracker = await stack.provider().get_tracker(label.tracker_id)
    assert tracker.status is CarrierStatus.RETURN_TO_SENDER
    failure, back = tracker.details[-2:]
    assert (failure.status, failure.message, failure.location) == (
        CarrierStatus.FAILURE,
        "Address not accessible",
        "Memphis, TN",
    )
    assert back.location == "Memphis, TN, 38118, US"
    assert back.message == "Return to Sender Processed"

    hooks = await stack.hooks.wait_for(label.tracker_id, 3)
    statuses = [json.loads(body)["result"]["status"] for body, _ in hooks]
    assert statuses == ["in_transit", "failure", "return_to_sender"]


async def test_the_advance_switch_refuses_what_cannot_be(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    missing = await advance(sandbox, "trk_doesnotexist")
    assert missing.status_code == 404
    assert missing.json()["code"] == "tracker_not_found"
    label = await _label(stack)
    assert label.tracker_id is not None
    bogus = await advance(sandbox, label.tracker_id, {"status": "teleported"})
    assert bogus.status_code == 422
    await stack.provider().refund_label(label.provider_shipment_id)
    voided = await advance(sandbox, label.tracker_id)
    assert voided.status_code == 409


async def test_duplicate_webhooks_repeat_the_event_id(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    label = await _label(stack)
    assert label.tracker_id is not None
    await sandbox.put("/faults", json={"duplicateWebhookRate": 1})
    await advance(sandbox, label.tracker_id)
    hooks = await stack.hooks.wait_for(label.tracker_id, 2)
    await asyncio.sleep(0.2)
    hooks = stack.hooks.for_tracker(label.tracker_id)
    assert len(hooks) == 2
    assert hooks[0][0] == hooks[1][0]
    provider = stack.provider()
    first, second = (provider.verify_webhook(b, h) for b, h in hooks)
    assert first is not None
    assert second is not None
    assert first.event_id == second.event_id


async def test_auto_advance_moves_each_tracker_once_a_step_with_two_api_processes(
    stack: EasyPostStack, sandbox: httpx.AsyncClient
) -> None:
    labels = [await _label(stack) for _ in range(3)]
    tracker_ids = [label.tracker_id for label in labels if label.tracker_id is not None]
    assert len(tracker_ids) == 3
    second = stack.settings.model_copy(update={"shop_api_port": free_port()})
    async with live_api(second) as second_base:
        switched = await sandbox.put("/auto-advance", json={"intervalSeconds": 0.5})
        assert switched.status_code == 204
        async with httpx.AsyncClient(timeout=30) as http:
            # The switch reaches the second process too: both advance.
            url = f"{second_base}/_sandbox/easypost/auto-advance"
            assert (await http.put(url, json={"intervalSeconds": 0.5})).status_code == 204
        assert (await sandbox.get("/auto-advance")).json() == {"intervalSeconds": 0.5}
        for tracker_id in tracker_ids:
            await stack.hooks.wait_for(tracker_id, 3, seconds=20)
        await sandbox.delete("/auto-advance")
    await asyncio.sleep(0.3)
    for tracker_id in tracker_ids:
        tracker = await stack.provider().get_tracker(tracker_id)
        assert [d.status for d in tracker.details] == PATH
        hooks = stack.hooks.for_tracker(tracker_id)
        # One webhook a step: no process moved a tracker a step another had just moved.
        assert [json.loads(b)["result"]["status"] for b, _ in hooks] == [s.value for s in PATH[1:]]
    assert (await sandbox.get("/auto-advance")).json() is None


async def test_a_claimed_tracker_is_skipped_by_the_other_process(
    stack: EasyPostStack, engine: AsyncEngine, redis: Redis
) -> None:
    """Two transactions advance what is due at once: the tracker the first has claimed
    (locked, not yet committed) the second skips, and once the first commits the
    tracker is no longer due."""
    await redis.delete(AUTO_ADVANCE_KEY)
    label = await _label(stack)
    await asyncio.sleep(0.3)
    sessions = create_session_factory(engine)
    step = timedelta(seconds=0.2)

    def sandbox_in(session: AsyncSession) -> EasyPostSandbox:
        return EasyPostSandbox(
            session,
            base_url="http://sandbox",
            webhook_url="http://127.0.0.1:9/hooks",
            webhook_secret=SANDBOX_EASYPOST_WEBHOOK_SECRET,
        )

    async with sessions() as first, sessions() as second:
        claimed_at = utcnow()
        moved = await sandbox_in(first).advance_due(step, limit=1000)
        assert label.tracker_id in {t["id"] for t in moved}
        skipped = await sandbox_in(second).advance_due(step, limit=1000)
        assert label.tracker_id not in {t["id"] for t in skipped}
        await second.commit()
        await first.commit()
        # Re-stamped with its move: due again only a whole step after it. (Asking again
        # with the 0.2 s step itself found it due whenever the machine took longer than
        # that between the move and the question.)
        row = await second.get(SandboxEasyPostObject, str(label.tracker_id))
        assert row is not None
        assert row.advanced_at is not None
        assert row.advanced_at >= claimed_at
        again = await sandbox_in(second).advance_due(timedelta(minutes=1), limit=1000)
        assert label.tracker_id not in {t["id"] for t in again}
        await second.commit()
    tracker = await stack.provider().get_tracker(str(label.tracker_id))
    assert [d.status for d in tracker.details] == PATH[:2]
