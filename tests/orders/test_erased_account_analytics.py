"""An account erased while its order waits for 3-D Secure leaves analytics no person of
it: the order, paid after the erasure, counts (its ``order_complete``, its revenue) for
no one. Before, that event carried the account's id, and the rollup numbered the account
in ``analytics_people`` again (and linked its events for the funnel), the erasure's
pseudonym having taken what it had."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, or_, select

from core.db import create_session_factory
from models.analytics import AnalyticsEvent, AnalyticsEventLink
from models.analytics_rollups import AnalyticsPerson, AnalyticsSalesHour
from services.analytics.rollups import RollupService
from temporal.clients.orders import workflow_id
from tests.live import LiveStack
from tests.orders.helpers import eventually, place, product, shopper_with_cart, wait_for


async def _account_events(engine: AsyncEngine, user_id: str) -> int:
    async with create_session_factory(engine)() as session:
        found = await session.exec(
            select(func.count())
            .select_from(AnalyticsEvent)
            .where(or_(col(AnalyticsEvent.user_id) == user_id, AnalyticsEvent.person_id == user_id))
        )
        return int(found.one())


async def test_an_order_paid_after_its_account_was_erased_gives_analytics_no_person(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    item = await product(http, staff, price=4100, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_authenticationRequired")
    waiting = await wait_for(http, shopper.headers, placed["id"], {"requires_action"})
    user_id = shopper.user["id"]
    assert await _account_events(engine, user_id) > 0  # add_to_cart, checkout and payment

    erased = await http.delete(f"/api/users/{user_id}", headers=shopper.headers)
    assert erased.status_code == 204, erased.text

    async def pseudonymised() -> bool:  # the relay's account_erasure has run
        return await _account_events(engine, user_id) == 0

    await eventually(pseudonymised)
    # The customer had authenticated in another tab: the order goes on, paid.
    assert (await http.get(waiting["nextActionUrl"])).status_code == 200
    await live.client.get_workflow_handle(workflow_id(placed["id"])).result()
    order = await wait_for(http, staff, placed["id"])
    assert order["status"] == "fulfillment_queued", order

    sessions = create_session_factory(engine)
    await RollupService(sessions).refresh()
    assert await _account_events(engine, user_id) == 0
    async with sessions() as session:
        people = await session.exec(
            select(AnalyticsPerson.person_id).where(AnalyticsPerson.person_id == user_id)
        )
        assert people.all() == []
        links = await session.exec(
            select(AnalyticsEventLink.id).where(AnalyticsEventLink.person_id == user_id)
        )
        assert links.all() == []
        # Still counted: the order's completion (for nobody) and its sale.
        completed = (
            await session.exec(
                select(AnalyticsEvent).where(
                    AnalyticsEvent.event == "order_complete",
                    AnalyticsEvent.properties["orderId"].astext == placed["id"],
                )
            )
        ).one()
        assert completed.user_id is None
        assert completed.session_id is None
        assert completed.person_id == f"ae:{completed.id}"
        counted = await session.exec(
            select(AnalyticsPerson.number).where(AnalyticsPerson.person_id == completed.person_id)
        )
        assert counted.one() is not None
        placed_at = datetime.fromisoformat(order["createdAt"]).astimezone(UTC)
        sales = await session.exec(
            select(func.sum(AnalyticsSalesHour.revenue)).where(
                AnalyticsSalesHour.hour == placed_at.replace(minute=0, second=0, microsecond=0),
                AnalyticsSalesHour.currency == order["currency"],
            )
        )
        assert (sales.one() or 0) >= order["totals"]["total"]
