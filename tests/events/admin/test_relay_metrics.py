"""The relay's gauges in /metrics: lag, pending deliveries and dead letters per subscriber."""

from __future__ import annotations

from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, func, update

from cli.stack.process import free_port
from core.db import SessionFactory, transaction
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent
from services.events.relay_health import DISPATCH, relay_health
from services.events.subscriptions import SubscriptionRepository
from tests.events.admin.seeding import Seeder, unique_subscriber
from tests.factories import ClientFactory, stocked_product

GAUGES = (
    "shop_event_relay_lag_seconds",
    "shop_event_deliveries_pending",
    "shop_event_dead_letters",
    "shop_event_deliveries_unknown",
)


def _gauges(exposition: str) -> dict[tuple[str, str], float]:
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in GAUGES or sample.name == "shop_event_relay_metrics_ok":
                values[(sample.name, sample.labels.get("subscriber", ""))] = sample.value
    return values


async def test_metrics_report_lag_pending_and_dead_letters_per_subscriber(
    client: httpx.AsyncClient, seed: Seeder
) -> None:
    crm, mail = unique_subscriber("crm"), unique_subscriber("mail")
    await seed.event(
        deliveries={crm: DeliveryStatus.PENDING, mail: DeliveryStatus.FAILED},
        age=timedelta(minutes=10),
    )
    await seed.event(
        deliveries={crm: DeliveryStatus.PENDING, mail: DeliveryStatus.FAILED},
        age=timedelta(minutes=2),
    )
    await seed.event(deliveries={crm: DeliveryStatus.FAILED, mail: DeliveryStatus.DELIVERED})

    answer = await client.get("/metrics")
    assert answer.status_code == 200
    gauges = _gauges(answer.text)
    assert gauges[("shop_event_relay_metrics_ok", "")] == 1
    assert 600 <= gauges[("shop_event_relay_lag_seconds", crm)] < 660
    assert gauges[("shop_event_relay_lag_seconds", mail)] == 0
    assert gauges[("shop_event_deliveries_pending", crm)] == 2
    assert gauges[("shop_event_deliveries_pending", mail)] == 0
    assert gauges[("shop_event_dead_letters", crm)] == 1
    assert gauges[("shop_event_dead_letters", mail)] == 2
    assert gauges[("shop_event_relay_lag_seconds", DISPATCH)] >= 0
    # No relay has said it knows crm: its pending deliveries wait for a worker that does.
    assert gauges[("shop_event_deliveries_unknown", crm)] == 2
    assert gauges[("shop_event_deliveries_unknown", mail)] == 0


async def test_pending_deliveries_a_live_relay_knows_are_not_unknown(
    client: httpx.AsyncClient, seed: Seeder
) -> None:
    known, other_type, gone = (unique_subscriber(p) for p in ("known", "typed", "gone"))
    async with transaction(seed.sessions) as session:
        subscriptions = SubscriptionRepository(session)
        await subscriptions.beat([(known, "order.created"), (other_type, "order.cancelled")])
    for _ in range(2):
        await seed.event(deliveries={n: DeliveryStatus.PENDING for n in (known, other_type, gone)})
    gauges = _gauges((await client.get("/metrics")).text)
    assert gauges[("shop_event_deliveries_pending", known)] == 2
    assert gauges[("shop_event_deliveries_unknown", known)] == 0
    # Known for another event type only: a worker of that code cannot deliver these.
    assert gauges[("shop_event_deliveries_unknown", other_type)] == 2
    assert gauges[("shop_event_deliveries_unknown", gone)] == 2


async def test_dispatch_lag_is_the_age_of_the_first_row_not_fanned_out(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        # Rolled back with the test: every other test's events count as dispatched.
        await session.exec(update(OutboxEvent).values(dispatched_at=func.now()))
    seeder = Seeder(db_sessions)
    await seeder.event(age=timedelta(hours=1), dispatched=False)
    await seeder.event(age=timedelta(minutes=1), dispatched=False)
    async with db_sessions() as session:
        health = await relay_health(session)
    assert 3600 <= health.lag_seconds[DISPATCH] < 3660


async def test_dispatch_lag_is_zero_when_everything_is_dispatched(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        # Rolled back with the test: every other test's events count as dispatched.
        await session.exec(update(OutboxEvent).values(dispatched_at=func.now()))
        await session.exec(delete(EventDelivery))
    async with db_sessions() as session:
        health = await relay_health(session)
    assert health.lag_seconds == {DISPATCH: 0.0}
    assert (health.pending, health.dead_letters) == ({}, {})


async def test_metrics_answer_without_the_relay_gauges_when_the_database_is_down(
    make_client: ClientFactory,
) -> None:
    broken = await make_client(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    )
    answer = await broken.get("/metrics")
    assert answer.status_code == 200
    gauges = _gauges(answer.text)
    assert gauges == {("shop_event_relay_metrics_ok", ""): 0}
    assert "http_requests_total" in answer.text


def _low_stock(exposition: str) -> float:
    [value] = [
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "shop_low_stock_products"
    ]
    return value


async def test_metrics_count_the_products_below_their_low_stock_threshold(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """The seed's low-stock alert, for Prometheus (``deploy/prometheus/alerts.yml``): the
    products below their threshold now, as ``GET /api/inventory/low-stock`` counts them."""
    before = _low_stock((await client.get("/metrics")).text)
    item = await stocked_product(client, staff, price=1000, stock=3, lowStockThreshold=10)
    assert _low_stock((await client.get("/metrics")).text) == before + 1
    low = await client.get("/api/inventory/low-stock", headers=staff)
    assert low.json()["total"] == before + 1

    restocked = await client.post(
        f"/api/inventory/{item['id']}/adjust",
        headers=staff,
        json={"delta": 20, "reason": "restock"},
    )
    assert restocked.status_code == 200, restocked.text
    assert _low_stock((await client.get("/metrics")).text) == before
    await client.post(
        f"/api/inventory/{item['id']}/adjust",
        headers=staff,
        json={"delta": -23, "reason": "gone again"},
    )
    assert _low_stock((await client.get("/metrics")).text) == before + 1
    deleted = await client.delete(f"/api/products/{item['id']}", headers=staff)
    assert deleted.status_code == 204, deleted.text
    assert _low_stock((await client.get("/metrics")).text) == before
