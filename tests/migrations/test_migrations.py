from __future__ import annotations

import asyncio

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from migrations.runner import downgrade, upgrade
from models.base import metadata
from tests.migrations.conftest import asyncpg_url


def _tables(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return names

    return asyncio.run(read())


def _drift(url: str) -> list[object]:
    async def compare() -> list[object]:
        engine = create_async_engine(url)

        def diff(conn: Connection) -> list[object]:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, metadata))

        async with engine.connect() as conn:
            result = await conn.run_sync(diff)
        await engine.dispose()
        return result

    return asyncio.run(compare())


def test_migrations_go_up_down_and_up_again(scratch_database: str) -> None:
    upgrade(scratch_database)
    assert {"outbox", "alembic_version"} <= _tables(scratch_database)
    downgrade(scratch_database, "base")
    assert _tables(scratch_database) == {"alembic_version"}
    upgrade(scratch_database)
    assert "outbox" in _tables(scratch_database)


def test_the_models_and_the_migrations_describe_the_same_schema(scratch_database: str) -> None:
    upgrade(scratch_database)
    assert _drift(scratch_database) == [], "run `shop migrate new` to add a migration"


def test_the_daily_product_rollups_are_filled_from_the_hourly_rows(scratch_database: str) -> None:
    """a7c0de140003 adds the daily product tables to a database whose hourly rollups are
    already there: each day is the sum of its hours (an hour belongs to the UTC day it
    starts in)."""
    upgrade(scratch_database, "a7c0de140002")

    async def fill() -> None:
        conn = await asyncpg.connect(asyncpg_url(scratch_database))
        try:
            await conn.execute(
                "INSERT INTO analytics_product_view_hourly (hour, product_id, views) VALUES "
                "('2025-05-01 00:00Z', 'prod_a', 2), ('2025-05-01 23:00Z', 'prod_a', 3), "
                "('2025-05-02 00:00Z', 'prod_a', 7), ('2025-05-01 10:00Z', 'prod_b', 1)"
            )
            await conn.execute(
                "INSERT INTO analytics_product_sales_hourly "
                "(hour, product_id, currency, units, revenue, orders) VALUES "
                "('2025-05-01 08:00Z', 'prod_a', 'USD', 2, 2000, 1), "
                "('2025-05-01 09:00Z', 'prod_a', 'USD', 3, 4500, 2), "
                "('2025-05-01 09:00Z', 'prod_a', 'EUR', 1, 900, 1)"
            )
        finally:
            await conn.close()

    async def read() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        conn = await asyncpg.connect(asyncpg_url(scratch_database))
        try:
            views = await conn.fetch(
                "SELECT to_char(day AT TIME ZONE 'UTC', 'MM-DD'), product_id, views "
                "FROM analytics_product_view_daily ORDER BY 1, 2"
            )
            sales = await conn.fetch(
                "SELECT to_char(day AT TIME ZONE 'UTC', 'MM-DD'), product_id, currency, units, "
                "revenue, orders FROM analytics_product_sales_daily ORDER BY 1, 2, 3"
            )
        finally:
            await conn.close()
        return [tuple(r) for r in views], [tuple(r) for r in sales]

    asyncio.run(fill())
    upgrade(scratch_database)
    views, sales = asyncio.run(read())
    assert views == [("05-01", "prod_a", 5), ("05-01", "prod_b", 1), ("05-02", "prod_a", 7)]
    assert sales == [("05-01", "prod_a", "EUR", 1, 900, 1), ("05-01", "prod_a", "USD", 5, 6500, 3)]


def test_the_breakdown_columns_are_backfilled_and_taken_away(scratch_database: str) -> None:
    """a7c0de140012 fills each existing event's source and ids (in batches of 50,000, so
    past a batch's end too), then the trigger keeps new ones; down, all of it goes."""
    upgrade(scratch_database, "f15c0de00040")
    url = asyncpg_url(scratch_database)
    insert = (
        "INSERT INTO analytics_events (id, event, person_id, properties, referrer, created_at) "
        "VALUES ($1, 'product_view', 'p', $2::jsonb, $3, now())"
    )

    async def fill() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO analytics_events (id, event, person_id, properties, created_at) "
                "SELECT 'ae_' || lpad(n::text, 6, '0'), 'product_view', 'p', "
                "jsonb_build_object('utm_source', 'Bulk', 'productId', 'prod_' || n), now() "
                "FROM generate_series(1, 50010) n"
            )
            await conn.execute(insert, "ae_zz_ref", "{}", "https://Www.Example.com/a")
            await conn.execute(insert, "ae_zz_cat", '{"categoryId": "cat_1"}', None)
        finally:
            await conn.close()

    async def read() -> dict[str, object]:
        conn = await asyncpg.connect(url)
        try:
            columns = await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                "'analytics_events' AND column_name IN ('source', 'category_id', 'product_id')"
            )
            if not columns:
                return {"columns": 0}
            rows = await conn.fetch(
                "SELECT id, source, category_id, product_id FROM analytics_events "
                "WHERE id IN ('ae_000001', 'ae_050010', 'ae_zz_ref', 'ae_zz_cat', 'ae_zz_new', "
                "'ae_zz_down')"
            )
            unfilled = await conn.fetchval(
                "SELECT count(*) FROM analytics_events WHERE source IS NULL"
            )
        finally:
            await conn.close()
        return {"columns": columns, "unfilled": unfilled} | {r["id"]: tuple(r)[1:] for r in rows}

    async def add_one(event_id: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(insert, event_id, '{"utm_source": "New"}', None)
        finally:
            await conn.close()

    asyncio.run(fill())
    upgrade(scratch_database, "a7c0de140012")
    asyncio.run(add_one("ae_zz_new"))
    found = asyncio.run(read())
    assert found == {
        "columns": 3,
        "unfilled": 0,
        "ae_000001": ("bulk", None, "prod_1"),
        "ae_050010": ("bulk", None, "prod_50010"),
        "ae_zz_ref": ("www.example.com", None, None),
        "ae_zz_cat": ("direct", "cat_1", None),
        "ae_zz_new": ("new", None, None),
    }
    downgrade(scratch_database, "f15c0de00040")
    assert asyncio.run(read()) == {"columns": 0}
    # Written while down (no trigger): filled by the next upgrade.
    asyncio.run(add_one("ae_zz_down"))
    upgrade(scratch_database)
    again = asyncio.run(read())
    assert again["unfilled"] == 0
    assert again["ae_zz_down"] == ("new", None, None)


def test_the_timeline_audience_is_backfilled_and_taken_away(scratch_database: str) -> None:
    """a7c0de140027 marks the entries a staff-only writer words as staff's (stock released,
    units not put back, provider trouble, fulfilment steps, a parcel's label refunded or
    kept, a stall, a staff settlement, a refund failed at Stripe) and leaves every other
    one for the customer, as it was; down, the column goes."""
    upgrade(scratch_database, "a7c0de140026")
    url = asyncpg_url(scratch_database)
    entries = {
        # id: (message, data, key, audience after the upgrade)
        "oe_placed": ("order placed", "{}", None, "customer"),
        "oe_released": ("stock released", '{"products": 2}', None, "staff"),
        "oe_overflow": (
            "stock of prod_1: 3 not put back on hand",
            '{"notPutBack": 3}',
            None,
            "staff",
        ),
        "oe_waiting": (
            "waiting for the payment provider: it cannot be reached",
            "{}",
            "payment-provider-unreachable",
            "staff",
        ),
        "oe_opened": ("fulfilment order opened", '{"fulfillmentId": "ful_1"}', None, "staff"),
        "oe_held": ("fulfilment on hold", '{"reason": "fraud check"}', "hold:1", "staff"),
        "oe_voided": ("parcel shp_1 cancelled; its label was refunded", "{}", None, "staff"),
        "oe_kept": (
            "parcel shp_1 not cancelled: the carrier has scanned its label",
            "{}",
            "label-kept:shp_1",
            "staff",
        ),
        "oe_stalled": (
            "parcel shp_1 delayed: no carrier update for 48 h",
            '{"stallHours": 48}',
            None,
            "staff",
        ),
        "oe_corrected": (
            "parcel shp_1: shipping address corrected, label to be tried again",
            '{"correctionId": "adc_1"}',
            None,
            "customer",
        ),
        "oe_settled": ("return settled by staff: $5.00 refunded of $9.00", "{}", None, "staff"),
        "oe_bounced": (
            "refund re_1 failed at Stripe (lost_or_stolen_card): $5.00 not refunded",
            "{}",
            None,
            "staff",
        ),
        "oe_shipped": (
            "parcel shp_1 shipped with USPS Priority",
            '{"trackingCode": "94"}',
            None,
            "customer",
        ),
        "oe_tracked": (
            "parcel shp_1: delivered",
            '{"carrierStatus": "delivered"}',
            None,
            "customer",
        ),
        "oe_refunded": ("refunded $5.00", '{"refundId": "re_2"}', None, "customer"),
        "oe_return": ("return refunded: $5.00", "{}", None, "customer"),
    }

    async def fill() -> None:
        conn = await asyncpg.connect(url)
        try:
            # Timeline rows alone: their order's row (and its trigger's notice) is beside
            # the point here.
            await conn.execute("SET session_replication_role = replica")
            for entry_id, (message, data, key, _) in entries.items():
                await conn.execute(
                    "INSERT INTO order_events (id, order_id, status, message, data, key, "
                    "created_at) VALUES ($1, 'ord_1', 'confirmed', $2, $3::jsonb, $4, now())",
                    entry_id,
                    message,
                    data,
                    key,
                )
        finally:
            await conn.close()

    async def read() -> dict[str, str] | None:
        conn = await asyncpg.connect(url)
        try:
            if not await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                "'order_events' AND column_name = 'audience'"
            ):
                return None
            rows = await conn.fetch("SELECT id, audience FROM order_events")
        finally:
            await conn.close()
        return {r["id"]: r["audience"] for r in rows}

    async def refused() -> bool:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "UPDATE order_events SET audience = 'everyone' WHERE id = 'oe_placed'"
            )
        except asyncpg.CheckViolationError:
            return True
        finally:
            await conn.close()
        return False

    asyncio.run(fill())
    upgrade(scratch_database, "a7c0de140027")
    assert asyncio.run(read()) == {k: v[3] for k, v in entries.items()}
    assert asyncio.run(refused())
    downgrade(scratch_database, "a7c0de140026")
    assert asyncio.run(read()) is None
    upgrade(scratch_database)
    assert asyncio.run(read()) == {k: v[3] for k, v in entries.items()}
