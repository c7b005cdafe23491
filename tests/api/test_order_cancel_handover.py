"""``POST /api/orders/{id}/cancel`` while ``OrderWorkflow`` hands the order to the
warehouse, with the order's row in each state in between and stand-ins for the two
workflow clients (the workflows' own refusals are tested in ``tests/workflows``, the
whole race on the live stack in ``tests/orders/test_cancel_handover.py``).

Past its point of no return the ``OrderWorkflow`` refuses every cancel; whether the
order is cancellable then depends on where the hand-over stands, which the stand-in
moves "meanwhile", as the queue step's commit does between the request's read of the
order and the workflow's answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from models.orders import OrderStatus
from temporal.clients.connection import WorkflowNotFound, WorkflowRefused
from temporal.clients.orders import CancelOutcome
from tests.api.test_order_long_poll import move, placed_order
from tests.factories import signed_up
from workflows.types.fulfillment_orders import FulfillmentView
from workflows.types.orders import CancelRequest

Meanwhile = Callable[[], Awaitable[None]]


class PastThePointOfNoReturn:
    """``OrderWorkflows`` as the workflow answers once it has begun the hand-over: what
    happens to the order meanwhile first, then its validator's refusal, or (``ended``)
    the workflow found finished (it handed the order over and closed)."""

    def __init__(self, meanwhile: Meanwhile, *, ended: bool = False) -> None:
        self.meanwhile = meanwhile
        self.ended = ended

    async def cancel(self, order_id: str, request: CancelRequest) -> CancelOutcome:
        await self.meanwhile()
        if self.ended:
            return CancelOutcome.NOT_RUNNING
        raise WorkflowRefused(
            "the order is confirmed and can no longer be cancelled", code="order_not_cancellable"
        )


class Fulfilments:
    """``FulfillmentWorkflows``: started (its cancel closes the order, as its undo does)
    or not yet (the relay has still to start it)."""

    def __init__(self, engine: AsyncEngine, settings: Settings, *, started: bool) -> None:
        self.engine, self.settings, self.started = engine, settings, started
        self.asked: list[tuple[str, str | None]] = []

    async def cancel(self, order_id: str, reason: str | None) -> FulfillmentView | None:
        self.asked.append((order_id, reason))
        if not self.started:
            raise WorkflowNotFound(f"no fulfilment of {order_id}")
        await move(self.engine, self.settings, order_id, OrderStatus.CANCELLED)
        return FulfillmentView(order_id=order_id, fulfillment_id=None, status=None)


@dataclass
class HandOver:
    """A customer's order at ``confirmed`` (captured: the hand-over is next), and its
    cancel over HTTP with the workflow clients stood in for."""

    client: httpx.AsyncClient
    app: FastAPI
    engine: AsyncEngine
    settings: Settings
    monkeypatch: pytest.MonkeyPatch
    order_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    async def cancel(
        self,
        then: OrderStatus | None,
        *,
        started: bool = True,
        ended: bool = False,
        reason: str | None = None,
    ) -> tuple[httpx.Response, Fulfilments]:
        """POST the cancel; the order moves to ``then`` (if given) before the workflow
        answers (refused, or ``ended``); the fulfilment is ``started`` or not yet."""

        async def meanwhile() -> None:
            if then is not None:
                await move(self.engine, self.settings, self.order_id, then)

        fulfilments = Fulfilments(self.engine, self.settings, started=started)
        workflows = self.app.state.shop.workflows
        self.monkeypatch.setattr(
            workflows, "orders", PastThePointOfNoReturn(meanwhile, ended=ended)
        )
        self.monkeypatch.setattr(workflows, "fulfillments", fulfilments)
        answer = await self.client.post(
            f"/api/orders/{self.order_id}/cancel",
            headers=self.headers,
            json={"reason": reason} if reason else None,
        )
        return answer, fulfilments


@pytest.fixture
async def handover(
    client: httpx.AsyncClient,
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> HandOver:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    await move(engine, settings, order_id, OrderStatus.CONFIRMED)
    return HandOver(client, app, engine, settings, monkeypatch, order_id, headers)


def try_again(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["code"] == "order_being_handed_over"


async def test_refused_before_the_queue_step_commits_it_answers_503_try_again(
    handover: HandOver,
) -> None:
    """Refused, the order still ``confirmed``: the hand-over is in flight; a moment later
    the fulfilment takes the cancel. Before: a final 409 ``order_not_cancellable``."""
    answer, fulfilments = await handover.cancel(then=None)
    try_again(answer)
    assert fulfilments.asked == []


@pytest.mark.parametrize("ended", [False, True], ids=["refused", "workflow-ended"])
async def test_handed_over_meanwhile_the_cancel_goes_to_the_fulfilment(
    handover: HandOver, ended: bool
) -> None:
    """The request read ``confirmed``; the queue step committed before the workflow
    answered (refused, or it had ended): the fulfilment cancels the order. Before: 409."""
    answer, fulfilments = await handover.cancel(
        then=OrderStatus.FULFILLMENT_QUEUED, ended=ended, reason="ordered twice"
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"
    assert fulfilments.asked == [(handover.order_id, "ordered twice")]


async def test_handed_over_before_the_fulfilment_started_it_answers_503_try_again(
    handover: HandOver,
) -> None:
    answer, fulfilments = await handover.cancel(then=OrderStatus.FULFILLMENT_QUEUED, started=False)
    try_again(answer)
    assert fulfilments.asked == [(handover.order_id, None)]


async def test_refused_and_failed_meanwhile_it_is_a_final_409(handover: HandOver) -> None:
    """A refusal stays the answer when the order is not cancellable at all."""
    answer, fulfilments = await handover.cancel(then=OrderStatus.FAILED)
    assert (answer.status_code, answer.json()["code"]) == (409, "order_not_cancellable")
    assert fulfilments.asked == []
