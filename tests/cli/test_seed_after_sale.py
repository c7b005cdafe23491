"""``shop seed`` after the sale, on the live stack: parcels booked by the real workflows,
trackers moved at the carrier's past times, returns refunded, and nothing twice."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from cli.seed import AfterSaleSeeder, OrderSeeder, Seeder
from cli.seed.after_sale_plan import Shares, plan_order
from core.db import SessionFactory, create_session_factory
from models.fulfillment import Shipment, ShipmentLine, TrackingEvent
from models.orders import Order, OrderEvent
from models.returns import ReturnRequest, ReturnStatus
from services.seeding_after_sale import AfterSaleRepository
from tests.live import LiveStack

SEED = 5
# Every branch on a dozen orders: many split, stalled and returned ones. (Each order's
# fate is drawn from its id: a run may have no stalled parcel, and every parcel is still
# checked for a flag it should not have.)
SHARES = Shares(partial=0.2, stalled=0.3, two_parcels=0.6, returned_in_window=1.0)


async def _orders_reach(sessions: SessionFactory, meant: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        async with sessions() as session:
            rows = await session.exec(
                select(Order.id, Order.status).where(col(Order.id).in_(list(meant)))
            )
            statuses = {order_id: str(status) for order_id, status in rows.all()}
        if statuses == meant or time.monotonic() > deadline:
            return  # the checks below say which order is not where it should be
        await asyncio.sleep(0.5)


async def test_seeded_orders_are_shipped_delivered_and_returned_by_the_workflows(
    live: LiveStack, engine: AsyncEngine
) -> None:
    quiet = Console(quiet=True)
    sessions = create_session_factory(engine)
    seeder = Seeder(sessions, live.settings, quiet)
    rng = random.Random(33)
    leaves = await seeder.categories()
    await seeder.products(rng, 30, leaves, first_number=93_001)
    # Customers 5 to 8: the other seed tests order for customers 1 to 3.
    _, customers = await seeder.users(rng, 8)
    user_ids = customers[4:]
    staff_email, _ = await seeder.staff()
    # Twenty days back: every delivered order is within the return window.
    placed = await OrderSeeder(seeder).run(rng, user_ids, 12, declined_share=0.0, days=20)
    assert placed.by_status == {"fulfillment_queued": 12}

    async with sessions() as session:
        at_the_warehouse = await AfterSaleRepository(session).shippable(user_ids)
    after_sale = AfterSaleSeeder(sessions, live.settings, quiet)
    done = await after_sale.run(SEED, user_ids, staff_email, SHARES)
    now = datetime.now(UTC)
    # Each order's plan is its own: asked again, it says what the seed meant.
    plans = {
        o.order_id: plan_order(
            SEED, o.order_id, o.created_at, o.lines, now, live.settings.return_window_days, SHARES
        )
        for o in at_the_warehouse
    }
    ordered = {o.order_id: Counter(dict(o.lines)) for o in at_the_warehouse}
    # The order's status is written in its parcel's own transaction, which the seed waited
    # for; the wait leaves time to settle all the same, then the checks say which is wrong.
    await _orders_reach(sessions, {oid: str(plan.order_status) for oid, plan in plans.items()})

    async with sessions() as session:
        orders = (await session.exec(select(Order).where(col(Order.user_id).in_(user_ids)))).all()
        order_ids = [o.id for o in orders]
        shipments = (
            await session.exec(select(Shipment).where(col(Shipment.order_id).in_(order_ids)))
        ).all()
        shipment_ids = [s.id for s in shipments]
        shipment_lines = (
            await session.exec(
                select(ShipmentLine).where(col(ShipmentLine.shipment_id).in_(shipment_ids))
            )
        ).all()
        tracking = (
            await session.exec(
                select(TrackingEvent).where(col(TrackingEvent.shipment_id).in_(shipment_ids))
            )
        ).all()
        returns = (
            await session.exec(
                select(ReturnRequest).where(col(ReturnRequest.order_id).in_(order_ids))
            )
        ).all()
        timelines = (
            await session.exec(select(OrderEvent).where(col(OrderEvent.order_id).in_(order_ids)))
        ).all()

    by_order: dict[str, list[Shipment]] = defaultdict(list)
    for shipment in sorted(shipments, key=lambda s: s.shipped_at or now):
        by_order[shipment.order_id].append(shipment)
    packed: dict[str, Counter[str]] = defaultdict(Counter)
    for line in shipment_lines:
        packed[line.shipment_id][line.order_line_id] += line.quantity
    history: dict[str, list[TrackingEvent]] = defaultdict(list)
    for event in sorted(tracking, key=lambda e: e.occurred_at):
        history[event.shipment_id].append(event)
    returned = {r.order_id: r for r in returns}
    stall = live.settings.shipment_stall_hours
    assert done.parcels == len(shipments) == sum(len(p.parcels) for p in plans.values())
    assert done.returns == len(returns)

    for order in orders:
        plan = plans[order.id]
        parcels = by_order[order.id]
        assert len(parcels) == len(plan.parcels)
        for parcel, meant in zip(parcels, plan.parcels, strict=True):
            events = history[parcel.id]
            # The carrier's times, written right the first time: the label, then each
            # step the plan gave, in order, none after now.
            assert parcel.shipped_at == meant.label_at
            told = [("pre_transit", meant.label_at), *meant.steps] if meant.steps else []
            assert [(e.carrier_status, e.occurred_at) for e in events] == told
            assert packed[parcel.id] == Counter(dict(meant.lines))
            # Quiet for the stall hours by the carrier's times: flagged right away, once.
            assert parcel.delayed is meant.late(now, stall)
            flags = [e for e in timelines if e.message.startswith(f"parcel {parcel.id} delayed")]
            assert len(flags) == (1 if parcel.delayed else 0)
            if meant.delivered_at is not None:
                assert parcel.status == "delivered"
                assert parcel.delivered_at == (meant.delivered_at)
        assert order.status == plan.order_status
        if plan.parcels and plan.delivered:
            delivered = sum((packed[p.id] for p in parcels), Counter())
            assert delivered == ordered[order.id]  # every line in delivered parcels
        # The timeline reads in the order's own time, none of it at the seed's run.
        own = sorted(e.created_at for e in timelines if e.order_id == order.id)
        assert own[0] >= order.created_at - timedelta(seconds=1)
        if plan.parcels and plan.returned is None:
            carrier = [t for p in plan.parcels for t in (p.label_at, *(at for _, at in p.steps))]
            # A delayed flag at the moment the silence reached the stall hours.
            flagged = [
                p.steps[-1][1] + timedelta(hours=stall) for p in plan.parcels if p.late(now, stall)
            ]
            assert own[-1] == max(carrier + flagged)
            assert order.updated_at == own[-1]
        request = returned.get(order.id)
        assert (request is not None) == (plan.returned is not None)
        if request is not None:
            assert request.status == ReturnStatus.CLOSED
            assert request.refund_amount is not None
            assert request.refund_amount > 0

    fates = Counter(p.fate for p in plans.values())
    assert sum(p.delivered for p in plans.values()) >= 1
    assert returns, f"a delivered order within the window was returned: {fates}"

    again = await after_sale.run(SEED, user_ids, staff_email, SHARES)
    assert (again.parcels, again.returns) == (0, 0)
