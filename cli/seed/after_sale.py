"""Seeded orders carried past the sale through the real workflows: parcels created with
``FulfillmentWorkflow``'s ``create_shipment`` Update (as staff do), labels booked by each
``ShipmentWorkflow`` through the EasyPost sandbox, trackers moved with the sandbox's
advance switch at the carrier's past times (so the append-only tracking history is
written with them), whose signed webhooks drive the parcels and the orders; then returns
requested through ``ReturnService``, approved and received through ``ReturnWorkflow``'s
Updates, refunded by it. What each order gets is ``cli.seed.after_sale_plan``'s.

Once everything has settled, the parcels' rows and the orders' new timeline entries
are moved to the carrier's times, as ``backdating`` does for the orders. Returns keep
the time they were made: their workflows, refunds and timers ran then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import httpx
from temporalio.client import Client

from cli.seed.after_sale_plan import ParcelPlan, ReturnPlan, Shares, plan_order, statuses
from cli.seed.part import SeedPart
from core.db import transaction
from core.errors import DependencyUnavailable
from models.returns import ReturnCreate, ReturnLineCreate, ReturnStatus
from services.returns.repository import ReturnRepository
from services.returns.requests import ReturnService
from services.seeding_after_sale import AfterSaleRepository, ShippableOrder
from temporal.clients import TemporalConnection, WorkflowStarts
from temporal.clients.fulfillment import FulfillmentWorkflows
from temporal.clients.returns import ReturnWorkflows
from workflows.types.fulfillment_orders import LineQuantity, ShipmentRequest
from workflows.types.returns import ApproveRequest, ReceivedLine, ReceiveRequest

CONCURRENCY = 8
WAIT_SECONDS = 120.0
POLL_SECONDS = 0.3
PARCEL_WEIGHT_OZ = 24.0
T = TypeVar("T")


@dataclass(frozen=True)
class AfterSaleSeeded:
    by_status: dict[str, int] = field(default_factory=dict)
    parcels: int = 0
    returns: int = 0


async def _until(what: str, probe: Callable[[], Awaitable[T | None]]) -> T:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        found = await probe()
        if found is not None:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise DependencyUnavailable(f"{what} within {WAIT_SECONDS:.0f} s: are the workers up?")
        await asyncio.sleep(POLL_SECONDS)


class AfterSaleSeeder(SeedPart):
    async def run(
        self, seed: int, user_ids: list[str], staff_email: str, shares: Shares = Shares()
    ) -> AfterSaleSeeded:
        """The seeded orders at the warehouse taken on from where they stand; the stack's
        workers do it, or workers in this process when none serves the queues."""
        if not user_ids:
            return AfterSaleSeeded()
        if self.settings.easypost_api_key is not None:
            self.console.print("EASYPOST_API_KEY is set: no past parcels booked at a real carrier")
            return AfterSaleSeeded()
        from cli.seed.orders import OrderSeeder
        from temporal.client import connect

        client = await connect(self.settings)
        orders = OrderSeeder(self)
        async with orders.workers(client, not await orders.workers_present(client)):
            return await self._run(seed, user_ids, client, staff_email, shares)

    async def _run(
        self, seed: int, user_ids: list[str], client: Client, staff_email: str, shares: Shares
    ) -> AfterSaleSeeded:
        since = datetime.now(UTC)
        orders = await self._shippable(user_ids)
        now = datetime.now(UTC)
        plans = {
            o.order_id: plan_order(
                seed,
                o.order_id,
                o.created_at,
                o.lines,
                now,
                self.settings.return_window_days,
                shares,
            )
            for o in orders
        }
        to_ship = [o for o in orders if not o.shipped_before and plans[o.order_id].parcels]
        connection = TemporalConnection.of(client)
        starts = WorkflowStarts(connection, self.sessions, call_seconds=10)
        fulfillments = FulfillmentWorkflows(connection)
        labels: list[tuple[str, datetime]] = []
        gate = asyncio.Semaphore(CONCURRENCY)
        async with httpx.AsyncClient(base_url=self.settings.api_base_url, timeout=30) as http:
            with self.tally("shipping", len(to_ship)) as tally:

                async def ship(order: ShippableOrder) -> None:
                    async with gate:
                        for parcel in plans[order.order_id].parcels:
                            shipment_id = await self._ship(http, fulfillments, order, parcel)
                            labels.append((shipment_id, parcel.label_at))
                    tally.add()

                await asyncio.gather(*(ship(o) for o in to_ship))
        async with transaction(self.sessions) as session:
            await AfterSaleRepository(session).move_to_carrier_times(
                labels, [o.order_id for o in to_ship], since
            )
        returnable = [
            o for o in orders if not o.returned_before and plans[o.order_id].returned is not None
        ]
        staff_id = await self._staff_id(staff_email)
        returns = ReturnWorkflows(connection, starts)
        with self.tally("returns", len(returnable)) as tally:

            async def give_back(order: ShippableOrder) -> None:
                plan = plans[order.order_id].returned
                if plan is not None:
                    async with gate:
                        await self._return(starts, returns, order, plan, staff_id)
                tally.add()

            await asyncio.gather(*(give_back(o) for o in returnable))
        return AfterSaleSeeded(
            by_status=statuses(plans.values()),
            parcels=len(labels),
            returns=len(returnable),
        )

    async def _shippable(self, user_ids: list[str]) -> list[ShippableOrder]:
        """The orders at the warehouse, once the relay has opened each one's fulfilment."""

        async def all_opened() -> list[ShippableOrder] | None:
            async with transaction(self.sessions) as session:
                orders = await AfterSaleRepository(session).shippable(user_ids)
            return orders if all(o.fulfillment_id and o.lines for o in orders) else None

        return await _until("not every seeded order has its fulfilment order", all_opened)

    async def _staff_id(self, email: str) -> str | None:
        async with transaction(self.sessions) as session:
            return await AfterSaleRepository(session).user_id(email)

    # --- one parcel -------------------------------------------------------------------

    async def _ship(
        self,
        http: httpx.AsyncClient,
        fulfillments: FulfillmentWorkflows,
        order: ShippableOrder,
        parcel: ParcelPlan,
    ) -> str:
        request = ShipmentRequest(
            lines=[LineQuantity(order_line_id=i, quantity=q) for i, q in parcel.lines],
            weight_oz=PARCEL_WEIGHT_OZ,
        )
        created = await fulfillments.create_shipment(order.order_id, request)
        shipment_id = created.shipment_id

        async def tracker() -> str | None:
            async with transaction(self.sessions) as session:
                state = (await AfterSaleRepository(session).parcels([shipment_id]))[shipment_id]
            return state.tracker_id

        tracker_id = await _until(f"parcel {shipment_id} got no label", tracker)
        for n, (status, at) in enumerate(parcel.steps):
            body = {"status": status, "occurredAt": at.isoformat()}
            if n == 0:
                body["labelAt"] = parcel.label_at.isoformat()
            moved = await http.post(f"/_sandbox/easypost/trackers/{tracker_id}/advance", json=body)
            if moved.status_code != 200:
                raise DependencyUnavailable(
                    f"the EasyPost sandbox did not move {tracker_id}: {moved.text[:200]}"
                )
        if parcel.steps:
            last = parcel.steps[-1][0]

            async def arrived() -> bool | None:
                async with transaction(self.sessions) as session:
                    state = (await AfterSaleRepository(session).parcels([shipment_id]))[shipment_id]
                return True if state.status == last else None

            await _until(f"parcel {shipment_id} did not reach {last}", arrived)
        if parcel.late(datetime.now(UTC), self.settings.shipment_stall_hours):

            async def flagged() -> bool | None:
                async with transaction(self.sessions) as session:
                    state = (await AfterSaleRepository(session).parcels([shipment_id]))[shipment_id]
                return True if state.delayed else None

            # Its workflow flags it once the scan is recorded: before the rows are moved.
            await _until(f"parcel {shipment_id} was not flagged delayed", flagged)
        return shipment_id

    # --- one return -------------------------------------------------------------------

    async def _return(
        self,
        starts: WorkflowStarts,
        returns: ReturnWorkflows,
        order: ShippableOrder,
        plan: ReturnPlan,
        staff_id: str | None,
    ) -> None:
        body = ReturnCreate(
            lines=[ReturnLineCreate(order_line_id=i, quantity=q) for i, q in plan.lines],
            reason=plan.reason,
            note="seeded return",
        )
        async with transaction(self.sessions) as session:
            request, start = await ReturnService(session, self.settings).request(
                order.user_id, order.order_id, body
            )
        if not await starts.start(start):
            raise DependencyUnavailable(f"could not start the workflow of return {request.id}")
        status = await self._return_status(request.id, lambda _: True)
        if status is ReturnStatus.REQUESTED:  # not a reason approved automatically
            await returns.approve(request.id, ApproveRequest(staff_id=staff_id))
        await self._return_status(request.id, lambda s: s is ReturnStatus.APPROVED)
        async with transaction(self.sessions) as session:
            lines = await ReturnRepository(session).lines([request.id])
        receipt = ReceiveRequest(
            lines=[
                ReceivedLine(
                    return_line_id=line.id,
                    received_quantity=line.quantity - (1 if plan.damaged else 0),
                    damaged_quantity=1 if plan.damaged else 0,
                )
                for line in lines
            ],
            staff_id=staff_id,
        )
        await returns.receive(request.id, receipt)
        await self._return_status(request.id, lambda s: s is ReturnStatus.CLOSED)

    async def _return_status(
        self, return_id: str, done: Callable[[ReturnStatus], bool]
    ) -> ReturnStatus:
        async def probe() -> ReturnStatus | None:
            async with transaction(self.sessions) as session:
                row = await ReturnRepository(session).require(return_id)
            status = ReturnStatus(row.status)
            return status if done(status) else None

        return await _until(f"return {return_id} did not move on", probe)
