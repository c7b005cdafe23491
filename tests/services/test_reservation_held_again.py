"""A reservation that expired while its order waited for 3-D Secure is held again when
the customer authenticates (``ReservationService.reserve_again``), on the real database:
every line or none, only while the stock is there, once; never one the order's undo
released. Before, there was no way back: commit answered ``reservation_lapsed``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from activities.inventory import InventoryActivities, SweepInput
from core.db import SessionFactory, transaction
from models.base import utcnow
from services.inventory import OutOfStock, ReservationLapsed, ReservationService
from tests.services.test_inventory import _ledger_adds_up, _product, _reserve, _stock

TTL = timedelta(minutes=15)


async def _expired(sessions: SessionFactory, order: str, lines: dict[str, int]) -> None:
    assert await _reserve(sessions, order, lines, ttl=0.01)
    await asyncio.sleep(0.05)
    await InventoryActivities(sessions).sweep_expired_reservations(SweepInput())


async def _again(sessions: SessionFactory, order: str) -> int:
    async with transaction(sessions) as session:
        return await ReservationService(session).reserve_again(order, TTL)


async def test_an_expired_reservation_is_held_again_once_then_sold(
    db_sessions: SessionFactory,
) -> None:
    mug, tea = await _product(db_sessions, stock=3), await _product(db_sessions, stock=1)
    order = f"ord_again_{mug[-8:]}"
    await _expired(db_sessions, order, {mug: 2, tea: 1})
    assert await _stock(db_sessions, mug) == (3, 0, 3)
    assert await _again(db_sessions, order) == 2
    assert await _again(db_sessions, order) == 0  # a repeat: still held
    assert await _stock(db_sessions, mug) == (3, 2, 1)
    assert await _stock(db_sessions, tea) == (1, 1, 0)
    async with transaction(db_sessions) as session:
        assert await ReservationService(session).commit(order) == 2
    assert await _stock(db_sessions, mug) == (1, 0, 1)
    for product in (mug, tea):
        await _ledger_adds_up(db_sessions, product)


async def test_stock_gone_meanwhile_holds_nothing_again(db_sessions: SessionFactory) -> None:
    mug, tea = await _product(db_sessions, stock=3), await _product(db_sessions, stock=1)
    order = f"ord_gone_{mug[-8:]}"
    await _expired(db_sessions, order, {mug: 2, tea: 1})
    assert await _reserve(db_sessions, f"ord_other_{tea[-8:]}", {tea: 1}, ttl=600)
    with pytest.raises(OutOfStock) as gone:
        await _again(db_sessions, order)
    assert gone.value.code == "out_of_stock"
    # All or nothing: the mug is not held either, and the reservations stay expired.
    assert await _stock(db_sessions, mug) == (3, 0, 3)
    async with db_sessions() as session:
        rows = await ReservationService(session).reservations(order)
    assert {r.status for r in rows} == {"expired"}


async def test_a_released_reservation_is_not_taken_back(db_sessions: SessionFactory) -> None:
    mug = await _product(db_sessions, stock=3)
    order = f"ord_released_{mug[-8:]}"
    assert await _reserve(db_sessions, order, {mug: 1}, ttl=600)
    async with transaction(db_sessions) as session:
        await ReservationService(session).release(order)
    with pytest.raises(ReservationLapsed):
        await _again(db_sessions, order)
    assert await _stock(db_sessions, mug) == (3, 0, 3)


async def test_a_hold_about_to_lapse_is_kept_for_the_ttl_and_a_longer_one_not_shortened(
    db_sessions: SessionFactory,
) -> None:
    """An authorise that ended with the hold seconds from its expiry: hold-stock-again
    keeps it for the TTL from now, so the sweep cannot take it before the sale (before,
    it answered 0 and left the expiry as it was). A hold already longer (extended for
    3-D Secure) keeps its expiry."""
    mug = await _product(db_sessions, stock=3)
    short, long = f"ord_short_{mug[-8:]}", f"ord_long_{mug[-8:]}"
    assert await _reserve(db_sessions, short, {mug: 1}, ttl=2)
    assert await _reserve(db_sessions, long, {mug: 1}, ttl=3600)
    before = await _expiries(db_sessions, long)
    assert await _again(db_sessions, short) == 0
    assert await _again(db_sessions, long) == 0
    [kept] = await _expiries(db_sessions, short)
    assert kept - utcnow() > TTL - timedelta(minutes=1)
    assert await _expiries(db_sessions, long) == before
    assert await _stock(db_sessions, mug) == (3, 2, 1)


async def _expiries(sessions: SessionFactory, order: str) -> list[datetime]:
    async with sessions() as session:
        return [r.expires_at for r in await ReservationService(session).reservations(order)]
