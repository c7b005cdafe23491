"""Stock, ledger and reservations against the real database, concurrency included."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select

from activities.inventory import InventoryActivities, SweepInput
from core.db import SessionFactory, create_session_factory, transaction
from core.errors import ShopError, ValueOutOfRange
from models.catalog import ProductCreate, ProductUpdate
from models.inventory import (
    MAX_STOCK,
    PurchaseOrder,
    PurchaseOrderStatus,
    ReservationLine,
    ReservationStatus,
    StockLevel,
    StockMovement,
)
from models.outbox import OutboxEvent
from services.catalog.products import ProductService
from services.events.handlers import auto_reorder
from services.events.handling import handle_once
from services.inventory import (
    InsufficientStock,
    OutOfStock,
    PurchasingService,
    ReservationLapsed,
    ReservationService,
    StockService,
)
from tests.factories import unique_slug


@pytest.fixture
def sessions(db_sessions: SessionFactory) -> SessionFactory:
    """Rolled back after each test; racing tests commit through their own connections."""
    return db_sessions


async def _product(sessions: SessionFactory, stock: int = 0, **fields: Any) -> str:
    async with transaction(sessions) as session:
        product = await ProductService(session).create(
            ProductCreate(sku=unique_slug("inv"), name="Stocked thing", price=100, **fields)
        )
        product_id = product.id
    if stock:
        async with transaction(sessions) as session:
            await StockService(session).adjust(product_id, stock, "initial count")
    return product_id


async def _stock(sessions: SessionFactory, product_id: str) -> tuple[int, int, int]:
    async with sessions() as session:
        s = await StockService(session).get(product_id)
        return s.on_hand, s.reserved, s.available


async def _ledger_adds_up(sessions: SessionFactory, product_id: str) -> None:
    async with sessions() as session:
        on_hand, reserved = (
            await session.exec(
                select(
                    func.coalesce(func.sum(StockMovement.on_hand_delta), 0),
                    func.coalesce(func.sum(StockMovement.reserved_delta), 0),
                ).where(StockMovement.product_id == product_id)
            )
        ).one()
        level = await session.get(StockLevel, product_id)
    assert level is not None
    assert (on_hand, reserved) == (level.on_hand, level.reserved)


async def _reserve(
    sessions: SessionFactory, order_id: str, lines: dict[str, int], ttl: float = 600
) -> bool:
    try:
        async with transaction(sessions) as session:
            await ReservationService(session).reserve(
                order_id,
                [ReservationLine(product_id=p, quantity=q) for p, q in lines.items()],
                timedelta(seconds=ttl),
            )
    except OutOfStock:
        return False
    return True


async def test_adjustments_never_make_stock_negative(sessions: SessionFactory) -> None:
    product = await _product(sessions, stock=10)
    assert await _stock(sessions, product) == (10, 0, 10)
    with pytest.raises(InsufficientStock):
        async with transaction(sessions) as session:
            await StockService(session).adjust(product, -11, "shrinkage")
    assert await _stock(sessions, product) == (10, 0, 10)
    assert await _reserve(sessions, unique_slug("ord"), {product: 8})
    # Reserved stock cannot be adjusted away either.
    with pytest.raises(InsufficientStock):
        async with transaction(sessions) as session:
            await StockService(session).adjust(product, -3, "shrinkage")
    async with transaction(sessions) as session:
        await StockService(session).adjust(product, -2, "shrinkage")
    assert await _stock(sessions, product) == (8, 8, 0)
    await _ledger_adds_up(sessions, product)


async def test_a_reservation_is_all_or_nothing_and_names_what_is_short(
    sessions: SessionFactory,
) -> None:
    plenty = await _product(sessions, stock=5)
    scarce = await _product(sessions, stock=1)
    with pytest.raises(OutOfStock) as caught:
        async with transaction(sessions) as session:
            await ReservationService(session).reserve(
                "ord_short",
                [
                    ReservationLine(product_id=plenty, quantity=3),
                    ReservationLine(product_id=scarce, quantity=2),
                ],
                timedelta(minutes=5),
            )
    assert caught.value.extra["unavailableItems"] == [
        {"productId": scarce, "requested": 2, "available": 1}
    ]
    assert await _stock(sessions, plenty) == (5, 0, 5)
    assert await _stock(sessions, scarce) == (1, 0, 1)


async def test_no_overselling_under_concurrent_checkouts(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    a = await _product(sessions, stock=10)
    b = await _product(sessions, stock=10)
    # 30 orders race for 10 units of each; half list the products in the other order,
    # which would deadlock if rows were not locked in a fixed order.
    results = await asyncio.gather(
        *(
            _reserve(sessions, f"ord_r{i}_{a[-10:]}", {a: 1, b: 1} if i % 2 else {b: 1, a: 1})
            for i in range(30)
        )
    )
    assert sum(results) == 10
    assert await _stock(sessions, a) == (10, 10, 0)
    assert await _stock(sessions, b) == (10, 10, 0)
    await _ledger_adds_up(sessions, a)


async def test_reserve_release_and_commit_are_idempotent(sessions: SessionFactory) -> None:
    product = await _product(sessions, stock=6)
    assert await _reserve(sessions, "ord_idem_1", {product: 4})
    assert await _reserve(sessions, "ord_idem_1", {product: 4})  # the retry finds it
    assert await _stock(sessions, product) == (6, 4, 2)
    for expected in (1, 0):
        async with transaction(sessions) as session:
            assert await ReservationService(session).release("ord_idem_1") == expected
    assert await _stock(sessions, product) == (6, 0, 6)

    assert await _reserve(sessions, "ord_idem_2", {product: 5})
    for expected in (1, 0):
        async with transaction(sessions) as session:
            assert await ReservationService(session).commit("ord_idem_2") == expected
    assert await _stock(sessions, product) == (1, 0, 1)  # sold
    async with transaction(sessions) as session:
        assert await ReservationService(session).release("ord_idem_2") == 0  # sold stays sold
    await _ledger_adds_up(sessions, product)


async def test_stock_past_the_most_a_product_holds_is_refused_typed_and_changes_nothing(
    sessions: SessionFactory,
) -> None:
    """on_hand is a PostgreSQL integer: a receipt onto nearly full stock overflowed it in
    the database's own arithmetic, the database's error retried forever in a worker. Now
    an adjustment is ``ValueOutOfRange`` (422 ``invalid_value``), checked as bigints so
    the transaction is not aborted, and nothing changed."""
    product = await _product(sessions, stock=6)
    async with transaction(sessions) as session:
        await StockService(session).adjust(product, MAX_STOCK - 8, "a huge delivery")
    assert await _stock(sessions, product) == (MAX_STOCK - 2, 0, MAX_STOCK - 2)

    with pytest.raises(ValueOutOfRange) as receipt:
        async with transaction(sessions) as session:
            await StockService(session).adjust(product, 3, "one more box")
    assert receipt.value.extra == {"productId": product, "limit": MAX_STOCK}
    assert await _stock(sessions, product) == (MAX_STOCK - 2, 0, MAX_STOCK - 2)
    async with transaction(sessions) as session:
        await StockService(session).adjust(product, 2, "what fits")
    assert await _stock(sessions, product) == (MAX_STOCK, 0, MAX_STOCK)
    await _ledger_adds_up(sessions, product)


async def test_a_sale_undone_onto_stock_topped_up_to_the_most_is_not_put_back_and_ends(
    sessions: SessionFactory,
) -> None:
    """An undone order's sold units go back on hand; staff topped the stock up meanwhile
    to within them of the most a product holds. The restock (a compensation, retried
    until it succeeds) raised ``ValueOutOfRange`` on every attempt: the order's undo
    never finished. Now it finishes: that product's units are not put back (its
    reservation ``not_put_back``, a ``return`` movement of 0 saying how many to count in
    by hand, one ``inventory.stock_not_put_back`` event telling staff), the others are,
    and a repeat changes nothing (no second event)."""
    full = await _product(sessions, stock=6)
    roomy = await _product(sessions, stock=4)
    assert await _reserve(sessions, "ord_full_1", {full: 5, roomy: 3})
    async with transaction(sessions) as session:
        await ReservationService(session).commit("ord_full_1")
        await StockService(session).adjust(full, MAX_STOCK - 3, "a huge delivery")
    assert await _stock(sessions, full) == (MAX_STOCK - 2, 0, MAX_STOCK - 2)

    for returned, not_put_back in ((2, {full: 5}), (0, {})):
        async with transaction(sessions) as session:
            restock = await ReservationService(session).restock("ord_full_1")
        assert (restock.returned, restock.not_put_back) == (returned, not_put_back)
    assert await _stock(sessions, full) == (MAX_STOCK - 2, 0, MAX_STOCK - 2)
    assert await _stock(sessions, roomy) == (4, 0, 4)
    async with sessions() as session:
        held = await ReservationService(session).reservations("ord_full_1")
        [entry] = (
            await session.exec(
                select(StockMovement)
                .where(StockMovement.product_id == full, StockMovement.kind == "return")
                .where(StockMovement.reference == "ord_full_1")
            )
        ).all()
    assert {r.product_id: r.status for r in held} == {
        full: ReservationStatus.NOT_PUT_BACK,
        roomy: ReservationStatus.RETURNED,
    }
    assert (entry.on_hand_delta, entry.reserved_delta) == (0, 0)
    assert entry.reason == (
        "order undone: 5 not put back on hand: it would pass the most a product holds "
        "(2,147,483,647); count them in by hand (an adjustment) once there is room"
    )
    async with sessions() as session:
        told = (
            await session.exec(
                select(OutboxEvent)
                .where(OutboxEvent.type == "inventory.stock_not_put_back")
                .where(col(OutboxEvent.aggregate_id).in_([full, roomy]))
            )
        ).all()
    assert [(e.aggregate_type, e.aggregate_id, e.data) for e in told] == [
        (
            "product",
            full,
            {
                "productId": full,
                "quantity": 5,
                "limit": MAX_STOCK,
                "orderId": "ord_full_1",
                "returnId": None,
                "reference": "ord_full_1",
            },
        )
    ]
    await _ledger_adds_up(sessions, full)
    await _ledger_adds_up(sessions, roomy)


async def _low_stock(sessions: SessionFactory, product_id: str) -> list[OutboxEvent]:
    async with sessions() as session:
        rows = await session.exec(
            select(OutboxEvent)
            .where(
                OutboxEvent.aggregate_id == product_id, OutboxEvent.type == "inventory.low_stock"
            )
            .order_by(col(OutboxEvent.seq))
        )
        return list(rows.all())


async def _events(sessions: SessionFactory, product_id: str) -> list[dict[str, Any]]:
    return [e.data for e in await _low_stock(sessions, product_id)]


async def _event_ids(sessions: SessionFactory, product_id: str) -> list[str]:
    return [e.id for e in await _low_stock(sessions, product_id)]


async def test_low_stock_alerts_once_per_crossing_and_reorders_once(
    sessions: SessionFactory,
) -> None:
    product = await _product(
        sessions, stock=10, low_stock_threshold=5, auto_reorder=True, reorder_quantity=40
    )
    assert await _reserve(sessions, "ord_low_1", {product: 6})  # available 4 < 5: alert
    assert await _reserve(sessions, "ord_low_2", {product: 1})  # still low: no new alert
    events = await _events(sessions, product)
    assert events == [{"productId": product, "currentStock": 4, "threshold": 5}]
    async with transaction(sessions) as session:
        await ReservationService(session).release("ord_low_1")  # back to 9: re-armed
        await ReservationService(session).release("ord_low_2")
    assert await _reserve(sessions, "ord_low_3", {product: 7})  # 3 < 5: second alert
    assert [e["currentStock"] for e in await _events(sessions, product)] == [4, 3]

    # Auto-reorder is the event's subscriber now: each crossing delivered (one twice).
    reorder = auto_reorder()
    for event_id in await _event_ids(sessions, product):
        assert await handle_once(sessions, reorder, event_id) is True
        assert await handle_once(sessions, reorder, event_id) is False
    async with sessions() as session:
        orders = (
            await session.exec(select(PurchaseOrder).where(PurchaseOrder.product_id == product))
        ).all()
    assert [(po.quantity, po.status) for po in orders] == [(40, "open")]  # not two

    async with transaction(sessions) as session:
        await PurchasingService(session).receive(orders[0].id)
    assert await _stock(sessions, product) == (50, 7, 43)
    with pytest.raises(ShopError) as again:
        async with transaction(sessions) as session:
            await PurchasingService(session).receive(orders[0].id)
    assert again.value.code == "purchase_order_not_open"
    await _ledger_adds_up(sessions, product)


async def test_a_threshold_raised_above_what_is_available_alerts_at_once(
    sessions: SessionFactory,
) -> None:
    """Staff raising ``lowStockThreshold`` above the available stock is a crossing: the
    alert (and auto-reorder) goes out with the change, not at the next stock movement,
    which for a slow seller may never come. Lowering it back re-arms it, once."""
    product = await _product(
        sessions, stock=8, low_stock_threshold=5, auto_reorder=True, reorder_quantity=40
    )
    assert await _events(sessions, product) == []

    async def threshold(value: int) -> None:
        async with transaction(sessions) as session:
            await ProductService(session).update(product, ProductUpdate(low_stock_threshold=value))

    await threshold(10)
    await threshold(12)  # still low: no second alert
    assert await _events(sessions, product) == [
        {"productId": product, "currentStock": 8, "threshold": 10}
    ]
    await threshold(5)  # not low any more: re-armed, nothing sent
    await threshold(9)
    assert [e["threshold"] for e in await _events(sessions, product)] == [10, 9]


async def test_a_low_stock_event_delivered_after_the_dip_is_over_reorders_nothing(
    sessions: SessionFactory,
) -> None:
    """The relay delivers ``inventory.low_stock`` when it can: if staff restocked (or the
    held stock went back) meanwhile, the dip is over and no purchase order is opened."""
    product = await _product(
        sessions, stock=10, low_stock_threshold=5, auto_reorder=True, reorder_quantity=40
    )
    assert await _reserve(sessions, "ord_dip_1", {product: 7})  # 3 < 5: the event
    async with transaction(sessions) as session:
        await StockService(session).adjust(product, 20, "cycle count found more")
    [event_id] = await _event_ids(sessions, product)
    assert await handle_once(sessions, auto_reorder(), event_id) is True
    async with sessions() as session:
        opened = (
            await session.exec(select(PurchaseOrder).where(PurchaseOrder.product_id == product))
        ).all()
    assert opened == []


async def test_a_receipt_that_leaves_stock_low_reorders_again(sessions: SessionFactory) -> None:
    """Threshold 50, reorder 20: the first purchase order arrives while the product is
    still low. No crossing happened, yet the dip is not answered any more (nothing is
    open): the event goes again and auto-reorder opens the next purchase order, once.
    A receipt that lifts it above its threshold sends nothing."""
    product = await _product(
        sessions, stock=60, low_stock_threshold=50, auto_reorder=True, reorder_quantity=20
    )
    assert await _reserve(sessions, "ord_slow_po", {product: 40})  # 20 < 50: the event

    async def deliver_and_receive() -> None:
        for event_id in await _event_ids(sessions, product):
            await handle_once(sessions, auto_reorder(), event_id)
        async with sessions() as session:
            [opened], _ = await PurchasingService(session).purchase_orders(
                PurchaseOrderStatus.OPEN, product_id=product
            )
        async with transaction(sessions) as session:
            await PurchasingService(session).receive(opened.id)

    await deliver_and_receive()  # 40 available: still low
    assert [e["currentStock"] for e in await _events(sessions, product)] == [20, 40]
    await deliver_and_receive()  # 60 available: above it
    assert [e["currentStock"] for e in await _events(sessions, product)] == [20, 40]
    async with sessions() as session:
        orders, total = await PurchasingService(session).purchase_orders(None, product_id=product)
    assert (total, {po.status for po in orders}) == (2, {PurchaseOrderStatus.RECEIVED})
    assert await _stock(sessions, product) == (100, 40, 60)
    await _ledger_adds_up(sessions, product)

    # A product never alerted (no stock yet): its first receipt is its crossing, told once.
    empty = await _product(sessions, low_stock_threshold=50, auto_reorder=True, reorder_quantity=20)
    async with transaction(sessions) as session:
        assert await PurchasingService(session).reorder(empty)
    async with sessions() as session:
        [first], _ = await PurchasingService(session).purchase_orders(None, product_id=empty)
    async with transaction(sessions) as session:
        await PurchasingService(session).receive(first.id)
    assert await _events(sessions, empty) == [
        {"productId": empty, "currentStock": 20, "threshold": 50}
    ]


async def test_the_sweeper_returns_expired_reservations(sessions: SessionFactory) -> None:
    product = await _product(sessions, stock=3)
    assert await _reserve(sessions, "ord_sweep_old", {product: 2}, ttl=0.01)
    assert await _reserve(sessions, "ord_sweep_new", {product: 1}, ttl=600)
    await asyncio.sleep(0.05)
    result = await InventoryActivities(sessions).sweep_expired_reservations(SweepInput())
    assert result.reservations >= 1
    assert await _stock(sessions, product) == (3, 1, 2)  # only the expired one went back
    async with sessions() as session:
        statuses = {
            r.order_id: r.status
            for r in await ReservationService(session).reservations("ord_sweep_old")
        }
    assert statuses == {"ord_sweep_old": "expired"}
    await _ledger_adds_up(sessions, product)


async def test_extending_a_reservation_keeps_it_from_the_sweeper(sessions: SessionFactory) -> None:
    from models.base import utcnow

    product = await _product(sessions, stock=2)
    assert await _reserve(sessions, "ord_3ds", {product: 2}, ttl=0.01)
    async with transaction(sessions) as session:
        assert (
            await ReservationService(session).extend("ord_3ds", utcnow() + timedelta(minutes=10))
            == 1
        )
    await asyncio.sleep(0.05)
    await InventoryActivities(sessions).sweep_expired_reservations(SweepInput())
    assert await _stock(sessions, product) == (2, 2, 0)


async def test_two_hundred_racing_reservations_for_ten_units(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    product = await _product(sessions, stock=10)
    results = await asyncio.gather(
        *(_reserve(sessions, f"ord_{i:03d}_{product[-12:]}", {product: 1}) for i in range(200))
    )
    assert sum(results) == 10
    assert await _stock(sessions, product) == (10, 10, 0)
    async with sessions() as session:
        # The table's CHECK (reserved <= on_hand) means available can never have been < 0.
        level = await session.get(StockLevel, product)
        assert level is not None
        assert level.on_hand - level.reserved == 0
    await _ledger_adds_up(sessions, product)


async def test_a_lapsed_reservation_is_never_reported_as_held(sessions: SessionFactory) -> None:
    product = await _product(sessions, stock=2)
    line = [ReservationLine(product_id=product, quantity=1)]
    order = f"ord_lap_{product[-8:]}"
    async with transaction(sessions) as session:
        await ReservationService(session).reserve(order, line, timedelta(minutes=5))
    async with transaction(sessions) as session:
        await ReservationService(session).release(order)
    for action in ("reserve", "commit"):
        try:
            async with transaction(sessions) as session:
                service = ReservationService(session)
                if action == "reserve":
                    await service.reserve(order, line, timedelta(minutes=5))
                else:
                    await service.commit(order)
        except ReservationLapsed:
            continue
        raise AssertionError(f"{action} after the release must answer reservation_lapsed")
