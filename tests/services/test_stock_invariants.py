"""A reservation's sale or release that its stock row refuses (the row no longer covers
what is held: a bug, or a hand edit) fails, and records nothing. Before, ``_close``
ignored the refusal: the ledger got a ``sale`` or ``release`` movement the stock never
made (it no longer added up to the row) and the reservation moved on as if it had."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import col, select, update

from activities.inventory import InventoryActivities, SweepInput
from core.db import SessionFactory, transaction
from models.inventory import ReservationStatus, StockLevel, StockMovement
from services.inventory import ReservationService, StockInvariantBroken
from tests.services.test_inventory import _ledger_adds_up, _product, _reserve, _stock


async def _break(sessions: SessionFactory, product_id: str, reserved: int) -> None:
    """The row's reserved count set by hand, as a manual SQL edit would."""
    async with transaction(sessions) as session:
        await session.exec(
            update(StockLevel)
            .where(col(StockLevel.product_id) == product_id)
            .values(reserved=reserved)
        )


async def _recorded(sessions: SessionFactory, order_id: str) -> list[str]:
    """The kinds of the order's ledger movements, oldest first."""
    async with sessions() as session:
        rows = await session.exec(
            select(StockMovement.kind)
            .where(StockMovement.reference == order_id)
            .order_by(col(StockMovement.created_at), col(StockMovement.id))
        )
        return [str(kind) for kind in rows.all()]


async def _statuses(sessions: SessionFactory, order_id: str) -> list[ReservationStatus]:
    async with sessions() as session:
        return [r.status for r in await ReservationService(session).reservations(order_id)]


@pytest.mark.parametrize("step", ["commit", "release"])
async def test_a_sale_or_release_the_stock_row_refuses_fails_and_records_nothing(
    db_sessions: SessionFactory, step: str
) -> None:
    product = await _product(db_sessions, stock=5)
    assert await _reserve(db_sessions, "ord_broken_row", {product: 3})
    await _break(db_sessions, product, reserved=1)  # 3 held, the row says 1

    with pytest.raises(StockInvariantBroken) as broken:
        async with transaction(db_sessions) as session:
            await getattr(ReservationService(session), step)("ord_broken_row")

    assert str(broken.value).startswith(
        f"the stock of {product} does not cover the 3 held for ord_broken_row "
        "(on hand 5, reserved 1)"
    )
    assert await _stock(db_sessions, product) == (5, 1, 4)
    assert await _recorded(db_sessions, "ord_broken_row") == ["reservation"]
    assert await _statuses(db_sessions, "ord_broken_row") == [ReservationStatus.ACTIVE]

    await _break(db_sessions, product, reserved=3)  # put right: the step goes through
    async with transaction(db_sessions) as session:
        assert await getattr(ReservationService(session), step)("ord_broken_row") == 1
    await _ledger_adds_up(db_sessions, product)


async def test_the_sweep_expires_the_others_then_fails_on_a_broken_row(
    db_sessions: SessionFactory,
) -> None:
    """One order whose stock row no longer covers its reservation neither stops the
    sweep expiring the rest nor is expired itself: the activity fails after them."""
    sound = await _product(db_sessions, stock=4)
    broken = await _product(db_sessions, stock=4)
    assert await _reserve(db_sessions, "ord_sweep_sound", {sound: 2}, ttl=0.01)
    assert await _reserve(db_sessions, "ord_sweep_broken", {broken: 2}, ttl=0.01)
    await _break(db_sessions, broken, reserved=0)
    await asyncio.sleep(0.05)

    with pytest.raises(StockInvariantBroken, match="held for ord_sweep_broken"):
        await InventoryActivities(db_sessions).sweep_expired_reservations(SweepInput())

    assert await _statuses(db_sessions, "ord_sweep_sound") == [ReservationStatus.EXPIRED]
    assert await _stock(db_sessions, sound) == (4, 0, 4)
    assert await _statuses(db_sessions, "ord_sweep_broken") == [ReservationStatus.ACTIVE]
    assert await _recorded(db_sessions, "ord_sweep_broken") == ["reservation"]
    await _ledger_adds_up(db_sessions, sound)
